"""Maps namespaces to channel handlers, and holds the connection-level handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from wirehub.channels.handler import ChannelHandler, ConnectionHandler

__all__ = [
    "Router",
]

H = TypeVar("H", bound=type[ChannelHandler])
C = TypeVar("C", bound=type[ConnectionHandler])


class Router:
    """``@router.namespace("chat")`` on a ``ChannelHandler`` subclass routes ``chat:*`` to it.

    ``@router.namespace("")`` handles channels without a namespace. Namespaces without a handler
    of their own get the default ``ChannelHandler``, which enforces the namespace options.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, ChannelHandler] = {}
        self._default = ChannelHandler()
        self.connection_handler = ConnectionHandler()

    def namespace(self, name: str) -> Callable[[H], H]:
        def register(cls: H) -> H:
            if name in self._handlers:
                raise ValueError(f"namespace {name!r} already has a handler")
            self._handlers[name] = cls()
            return cls

        return register

    def connection(self, cls: C) -> C:
        """Register the connection-level handler (``on_connect``, ``on_rpc``, ``on_send``...)."""
        self.connection_handler = cls()
        return cls

    def handler_for(self, namespace: str) -> ChannelHandler:
        return self._handlers.get(namespace, self._default)

    def has_handler(self, namespace: str) -> bool:
        return namespace in self._handlers

    @property
    def namespaces(self) -> frozenset[str]:
        return frozenset(self._handlers)
