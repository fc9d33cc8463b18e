"""What a handler learns about the request it is deciding on."""

from __future__ import annotations

from dataclasses import dataclass, field

from wirehub.config import NamespaceOptions
from wirehub.types import JSON, User


@dataclass(slots=True)
class Context:
    """One request as a handler sees it.

    ``granted`` is the verdict of the declarative rules (subscription token, ``#`` user list,
    namespace options); the default handler follows it, a custom handler may decide otherwise.
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
