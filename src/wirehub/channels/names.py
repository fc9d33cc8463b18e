"""Channel name rules: namespaces, ``$`` private and ``#`` user-limited channels.

docs/protocol.md, "Channel names", states the rules for clients.
"""

from __future__ import annotations

from dataclasses import dataclass

from wirehub.errors import Invalid, LimitExceeded

__all__ = [
    "NAMESPACE_BOUNDARY",
    "PRIVATE_PREFIX",
    "USER_BOUNDARY",
    "USER_SEPARATOR",
    "ChannelName",
    "parse_channel",
]

NAMESPACE_BOUNDARY = ":"
USER_BOUNDARY = "#"
USER_SEPARATOR = ","
PRIVATE_PREFIX = "$"
_RESERVED = frozenset("*&/")


@dataclass(frozen=True, slots=True)
class ChannelName:
    full: str
    namespace: str
    """The namespace the channel belongs to; "" for channels without one."""
    private: bool
    """``$``-prefixed: only a subscription token can open it."""
    allowed_users: frozenset[str] | None
    """User ids after ``#``, or None when the channel is not user-limited."""


def parse_channel(name: str, *, max_length: int) -> ChannelName:
    """Split a channel into its parts; raise ``LimitExceeded`` or ``Invalid`` for bad names.

    An empty name is the caller's concern: the protocol closes the connection for it.
    """
    if len(name) > max_length:
        raise LimitExceeded(f"channel name longer than {max_length}")
    if not name.isascii() or not name.isprintable() or " " in name:
        raise Invalid("channel names are printable ASCII without spaces")
    if _RESERVED.intersection(name):
        raise Invalid("'*', '&' and '/' are reserved in channel names")
    private = name.startswith(PRIVATE_PREFIX)
    bare = name[1:] if private else name
    namespace, sep, _ = bare.partition(NAMESPACE_BOUNDARY)
    if not sep:
        namespace = ""
    allowed: frozenset[str] | None = None
    if USER_BOUNDARY in bare:
        users = bare.rsplit(USER_BOUNDARY, 1)[1]
        allowed = frozenset(u for u in users.split(USER_SEPARATOR) if u)
    return ChannelName(full=name, namespace=namespace, private=private, allowed_users=allowed)
