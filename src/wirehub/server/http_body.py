"""Reading a JSON request body on the HTTP port, within a size limit.

Shared by the account endpoints and the server API; each maps the failures to its own answers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

__all__ = ["BodyTimeoutError", "BodyTooLargeError", "InvalidJsonError", "read_json"]


class BodyTooLargeError(ValueError):
    """The body is larger than the limit (HTTP 413)."""


class InvalidJsonError(ValueError):
    """The body is not UTF-8 JSON (HTTP 400)."""


class BodyTimeoutError(ValueError):
    """The body did not arrive in time (HTTP 408): a client sending it byte by byte, or not at all."""


async def read_json(request: web.Request, limit: int, timeout_s: float) -> Any:
    """The request's body as decoded JSON, read to at most ``limit`` bytes within ``timeout_s``."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(f"request body larger than {limit} bytes")
    data = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.read(limit + 1 - len(data))
                if not chunk:
                    break
                data += chunk
                if len(data) > limit:
                    raise BodyTooLargeError(f"request body larger than {limit} bytes")
    except TimeoutError:
        raise BodyTimeoutError(f"request body not received within {timeout_s:g} s") from None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidJsonError("request body is not valid JSON") from None
