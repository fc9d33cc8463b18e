"""The per-connection state machine: which command may come when (docs/protocol.md, "Connection state").

Pure: it sees commands and events, never sockets or time.
"""

from __future__ import annotations

import enum

from wirehub.errors import DisconnectBadRequest
from wirehub.protocol.frames import Command, ConnectRequest, Pong, Refused

__all__ = [
    "Session",
    "State",
]


class State(enum.Enum):
    CONNECTING = "connecting"
    """Waiting for the first command, which must be ``connect``."""
    CONNECTED = "connected"
    FAILED = "failed"
    """``connect`` was answered with an error: the connection is unusable."""


class Session:
    __slots__ = ("ping_outstanding", "state")

    def __init__(self) -> None:
        self.state = State.CONNECTING
        self.ping_outstanding = False

    def admit(self, command: Command) -> None:
        """Raise ``DisconnectBadRequest`` if the command may not come now."""
        request = command.request
        if isinstance(request, Refused):
            request = request.request
        if isinstance(request, Pong):
            if not self.ping_outstanding:
                raise DisconnectBadRequest("pong without ping")
            self.ping_outstanding = False
            return
        if self.state is State.FAILED:
            raise DisconnectBadRequest("command after a failed connect")
        is_connect = isinstance(request, ConnectRequest)
        if self.state is State.CONNECTING and not is_connect:
            raise DisconnectBadRequest("connect must come first")
        if self.state is State.CONNECTED and is_connect:
            raise DisconnectBadRequest("already connected")

    def connect_succeeded(self) -> None:
        self.state = State.CONNECTED

    def connect_failed(self) -> None:
        self.state = State.FAILED

    def ping_sent(self) -> bool:
        """Record a ping; False if the previous one is still unanswered (the pong is late)."""
        if self.ping_outstanding:
            return False
        self.ping_outstanding = True
        return True
