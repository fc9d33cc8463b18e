"""What a handler learns about the request it is deciding on, and what it can reach from it."""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wirehub.config import NamespaceOptions
from wirehub.types import JSON, User

if TYPE_CHECKING:
    from wirehub.api import Server

__all__ = ["Context", "State"]


class State(types.SimpleNamespace):
    """The app's own resources (a database client, caches), set by its lifespan hooks.

    ``App.state`` and ``ctx.state`` are the same object: what ``on_startup`` stores there,
    every handler finds.
    """


@dataclass(slots=True)
class Context:
    """One request as a handler sees it.

    ``granted`` is the verdict of the declarative rules (subscription token, ``#`` user list,
    namespace options); the default handler follows it, a custom handler may decide otherwise.
    ``server`` is the server API (publish, disconnect, presence...) and ``state`` the app's
    resources.
    """

    user: User
    client: str
    channel: str = ""
    options: NamespaceOptions = field(default_factory=NamespaceOptions)
    granted: bool = False
    subscribed: bool = False
    data: JSON = None
    """Custom data the client sent with a connect or subscribe request."""
    token_data: JSON = None
    """``data`` claim of the subscription token, if one was used."""
    api: Server | None = field(default=None, repr=False)
    """The server API; read it as ``server``."""
    state: State = field(default_factory=State, repr=False)

    @property
    def server(self) -> Server:
        """The server API of the node serving this request."""
        if self.api is None:
            raise RuntimeError("this context was made without a server (a test's own Context?)")
        return self.api
