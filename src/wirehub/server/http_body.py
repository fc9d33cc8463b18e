"""Reading a JSON request body on the HTTP port, within a size limit.

Shared by the account endpoints and the server API; each maps the failures to its own answers.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = ["BodyTooLargeError", "InvalidJsonError", "read_json"]


class BodyTooLargeError(ValueError):
    """The body is larger than the limit (HTTP 413)."""


class InvalidJsonError(ValueError):
    """The body is not UTF-8 JSON (HTTP 400)."""


async def read_json(request: web.Request, limit: int) -> Any:
    """The request's body as decoded JSON, read to at most ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(f"request body larger than {limit} bytes")
    data = bytearray()
    while True:
        chunk = await request.content.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise BodyTooLargeError(f"request body larger than {limit} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidJsonError("request body is not valid JSON") from None
