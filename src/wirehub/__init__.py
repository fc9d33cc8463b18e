"""wirehub: a realtime WebSocket gateway speaking Centrifugo's client protocol v2.

The public API in one import::

    from wirehub import App, ChannelHandler, Context, Forbidden, Invalid, JSON, Router, Server
"""

from wirehub.api import NodeStats, PublishResult, Server
from wirehub.app import App
from wirehub.channels.context import Context, State
from wirehub.channels.handler import ChannelHandler, ConnectionHandler
from wirehub.channels.router import Router
from wirehub.errors import (
    AlreadySubscribed,
    Disconnect,
    DisconnectCustom,
    Expired,
    Forbidden,
    InternalError,
    Invalid,
    LimitExceeded,
    MethodNotFound,
    NotAvailable,
    NotFound,
    RateLimited,
    RequestError,
    Unauthorized,
    UnknownChannel,
    UnrecoverablePosition,
)
from wirehub.types import JSON, ClientInfo, HistoryPage, PresenceStats, Publication, StreamPosition, User
from wirehub.version import __version__

__all__ = [
    "JSON",
    "AlreadySubscribed",
    "App",
    "ChannelHandler",
    "ClientInfo",
    "ConnectionHandler",
    "Context",
    "Disconnect",
    "DisconnectCustom",
    "Expired",
    "Forbidden",
    "HistoryPage",
    "InternalError",
    "Invalid",
    "LimitExceeded",
    "MethodNotFound",
    "NodeStats",
    "NotAvailable",
    "NotFound",
    "PresenceStats",
    "Publication",
    "PublishResult",
    "RateLimited",
    "RequestError",
    "Router",
    "Server",
    "State",
    "StreamPosition",
    "Unauthorized",
    "UnknownChannel",
    "UnrecoverablePosition",
    "User",
    "__version__",
]
