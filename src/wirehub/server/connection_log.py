"""The two log lines of a connection's life, and the metrics counted with them.

``connection closed`` is said once per connection when it is over: who, from where, for how long,
and why it ended. ``connect refused`` is said once per failed connect (a bad or expired token, a
connection limit...), with the reason the client was given.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wirehub.errors import Disconnect, WirehubError, error_reply

if TYPE_CHECKING:
    from wirehub.server.connection import Client

__all__ = ["log_closed", "log_connect_refused"]

# The connection's own logger, as when these lines were written in ``connection.py``: operators
# filter on its name.
logger = logging.getLogger("wirehub.server.connection")


def log_closed(client: Client, reason: Disconnect | None, duration_s: float) -> None:
    """``reason`` is the server's reason to close, or None when the client closed or vanished."""
    if reason is None:
        # The client closed (or vanished: 1006, no close frame).
        code = getattr(client.ws, "close_code", None) or 1006
        text = getattr(client.ws, "close_reason", "") or ""
        by = "client"
    else:
        code, text, by = reason.code, reason.reason, "server"
    client.node.metrics.disconnected(code, by_server=by == "server")
    fields: dict[str, object] = {
        "client": client.id,
        "user": client.user.id,
        "remote": client.remote,
        "duration_s": round(duration_s, 3),
        "code": code,
        "reason": text,
        "closed_by": by,
    }
    if client.forwarded_for:
        fields["forwarded_for"] = client.forwarded_for
    logger.info("connection closed", extra=fields)


def log_connect_refused(client: Client, exc: Exception) -> None:
    """The reason is the error's own message, or the token check's (which never quotes the token)."""
    if isinstance(exc, Disconnect):
        code, reason = exc.code, exc.reason
    else:
        reply = error_reply(exc)
        code, reason = reply.code, reply.message
    client.node.metrics.connect_refused(code)
    detail = exc.__cause__
    if isinstance(detail, WirehubError):
        text = str(detail)
        reason = text if text.startswith(reason) else f"{reason}: {text}"
    logger.info(
        "connect refused",
        extra={
            "client": client.id,
            "user": client.user.id,
            "remote": client.remote,
            "code": code,
            "reason": reason,
        },
    )
