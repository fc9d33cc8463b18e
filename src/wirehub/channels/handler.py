"""The handler API: what app developers subclass to put rules and persistence on channels.

``ChannelHandler``'s defaults follow the namespace options, so the built-in behaviour is the
configuration alone. Raise ``Forbidden``, ``Invalid``, ``NotFound``... to fail one request;
any other exception is logged and answered with 100, and the connection lives on.
"""

from __future__ import annotations

from wirehub.channels.context import Context
from wirehub.errors import DisconnectNotAvailable, Forbidden, MethodNotFound, NotAvailable
from wirehub.types import JSON

__all__ = [
    "ChannelHandler",
    "ConnectionHandler",
]


class ChannelHandler:
    """Decides what clients may do in the channels of one namespace."""

    @property
    def default_on_publish(self) -> bool:
        """Whether ``on_publish`` is this class's own (the publish path then skips building a context)."""
        return type(self).on_publish is ChannelHandler.on_publish

    async def on_subscribe(self, ctx: Context) -> JSON | None:
        """Authorise a subscription; the returned value is sent to the client as ``data``."""
        if not ctx.granted:
            raise Forbidden()
        return None

    async def on_publish(self, ctx: Context, data: JSON) -> JSON:
        """Validate a client's publication; return what to store and fan out."""
        if not ctx.granted:
            raise Forbidden()
        return data

    async def on_history(self, ctx: Context) -> None:
        """Authorise a history request."""
        if not ctx.granted:
            raise Forbidden()

    async def on_presence(self, ctx: Context) -> None:
        """Authorise a presence or presence_stats request."""
        if not ctx.granted:
            raise Forbidden()

    async def on_rpc(self, ctx: Context, method: str, data: JSON) -> JSON:
        """Answer an RPC whose method is ``<namespace>:<name>``."""
        raise MethodNotFound()

    async def on_unsubscribe(self, ctx: Context) -> None:
        """Called after a client left a channel (unsubscribe or disconnect)."""


class ConnectionHandler:
    """Connection-level hooks: connect, disconnect, RPCs outside any namespace, and ``send``."""

    async def on_connect(self, ctx: Context) -> JSON | None:
        """Admit a connection (raise ``Forbidden`` to refuse); the value goes to the client."""
        return None

    async def on_disconnect(self, ctx: Context) -> None:
        """Called once when an authenticated connection ends."""

    async def on_rpc(self, ctx: Context, method: str, data: JSON) -> JSON:
        raise NotAvailable()

    async def on_send(self, ctx: Context, data: JSON) -> None:
        raise DisconnectNotAvailable()
