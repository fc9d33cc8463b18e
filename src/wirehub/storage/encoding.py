"""How the stores write publications down: JSON text for ``data``, ``tags`` and the client info.

Shared by the SQLite and MongoDB stores, so that both keep the same form: ASCII JSON text (NUL
and lone surrogates escaped), which neither database interprets (no ``$set`` keys for MongoDB)
and which decodes back to a value equal to the one appended.
"""

from __future__ import annotations

import json
from typing import Any

from wirehub.types import JSON, ClientInfo, Publication

__all__ = ["decode_info", "decode_publication", "dumps", "encode_info"]


def dumps(value: object) -> str:
    """Compact JSON text; ``TypeError`` for a value JSON cannot hold (the caller's bug)."""
    # ensure_ascii (the default) escapes NUL and lone surrogates, so any JSON value Python can
    # hold is stored as plain ASCII text and decodes back to an equal value.
    return json.dumps(value, separators=(",", ":"))


def encode_info(info: ClientInfo) -> str:
    return dumps(
        {"user": info.user, "client": info.client, "conn_info": info.conn_info, "chan_info": info.chan_info}
    )


def decode_info(text: str) -> ClientInfo:
    raw: dict[str, Any] = json.loads(text)
    return ClientInfo(
        user=raw["user"],
        client=raw["client"],
        conn_info=raw.get("conn_info"),
        chan_info=raw.get("chan_info"),
    )


def decode_publication(
    *, offset: int, data: str, info: str | None, tags: str | None, time_ms: int
) -> Publication:
    """A stored publication from its columns (``info`` and ``tags`` may be absent)."""
    decoded_data: JSON = json.loads(data)
    decoded_tags: dict[str, str] = json.loads(tags) if tags else {}
    return Publication(
        data=decoded_data,
        offset=offset,
        info=None if info is None else decode_info(info),
        tags=decoded_tags,
        time_ms=time_ms,
    )
