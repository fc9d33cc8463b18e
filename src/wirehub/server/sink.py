"""The outbox's ``Sink`` over a ``websockets`` server connection: text frames written synchronously.

``websockets.broadcast()`` writes this way: the protocol object frames the message and the
connection hands the bytes to the transport at once, without ``send()``'s await. Flow control
is the transport's: once its buffer passes the connection's high-water mark it pauses writing,
and ``drain()`` waits until it resumes.

Without extensions (permessage-deflate is off unless configured) a server's text frame is the
same bytes on every connection, so one publication is framed once (``text_frame``) and that
frame is written to every subscriber's transport as it is (``write_frame``).
"""

from __future__ import annotations

import struct

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from wirehub.server.outbox import BACKED_UP, NOT_WRITTEN, WRITTEN

__all__ = ["WebSocketSink", "text_frame"]


_FIN_TEXT = 0x81
"""FIN set, opcode 1 (text): a whole message in one frame (RFC 6455, section 5.2)."""


def text_frame(payload: bytes) -> bytes:
    """The whole text frame a server writes for ``payload`` when no extension is in use.

    RFC 6455's framing: no mask (servers do not mask), the payload length in 7 bits, or 16 or
    64 bits after the markers 126 and 127. What websockets' own ``Frame.serialize`` writes.
    """
    length = len(payload)
    if length < 126:
        header = bytes((_FIN_TEXT, length))
    elif length < 65536:
        header = struct.pack("!BBH", _FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, length)
    return header + payload


class WebSocketSink:
    __slots__ = ("_ws", "framed_alike")

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self.framed_alike = not ws.protocol.extensions
        """Extensions are settled by the handshake, which is over when a sink is made."""

    def open(self) -> bool:
        return self._ws.protocol.state is State.OPEN

    def writable(self) -> bool:
        ws = self._ws
        return ws.protocol.state is State.OPEN and not ws.paused

    def write(self, data: bytes) -> None:
        ws = self._ws
        if not ws.protocol.extensions:
            ws.transport.write(text_frame(data))
            return
        ws.protocol.send_text(data)  # permessage-deflate: the protocol compresses and frames
        ws.send_data()

    def write_frame(self, frame: bytes) -> None:
        # As ``protocol.send_text`` + ``send_data`` would, for a frame framed by ``text_frame``.
        self._ws.transport.write(frame)

    def send_frame(self, frame: bytes) -> int:
        ws = self._ws
        if ws.paused or ws.protocol.state is not State.OPEN:
            return NOT_WRITTEN
        ws.transport.write(frame)
        return BACKED_UP if ws.paused else WRITTEN

    def backed_up(self) -> bool:
        return self._ws.paused

    def buffered(self) -> int:
        transport = self._ws.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    async def drain(self) -> None:
        await self._ws.drain()
