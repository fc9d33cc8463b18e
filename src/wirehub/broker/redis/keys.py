"""Names of wirehub's keys and channels in Redis, and which cluster slot each lives in.

The package docstring (``wirehub.broker.redis``) tells the whole design."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.crc import key_slot

__all__ = ["KeySpace", "channel_slot", "hash_tag", "slot_of"]


CONNECT_TIMEOUT_S = 2.0
"""Opening a connection to Redis."""
COMMAND_TIMEOUT_S = 5.0
"""One command's reply."""
POOL_TIMEOUT_S = 5.0
"""How long a command waits for a free pooled connection."""
CONFIRM_TIMEOUT_S = 5.0
"""How long a subscribe waits for Redis to confirm it before the link is dropped and redone."""
SUBSCRIBE_BATCH = 256
"""Channels per SUBSCRIBE when a link resubscribes (a cluster link sends one per channel)."""
HEALTH = b"health"
"""Payload of the pings that check an idle link."""
PROBE_INTERVAL_S = 0.25
"""How often a server that stopped answering commands is pinged."""
PROBE_TIMEOUT_S = 1.0
"""How long such a ping may take to count as an answer."""


# --------------------------------------------------------------------------- names


def hash_tag(channel: str) -> str:
    """What goes between the braces of a channel's Redis names.

    The channel itself, unless it holds a brace (which would end or empty the tag): then a
    digest prefixed with ``/``, a character no channel name may hold, so the two never meet.
    """
    if "{" in channel or "}" in channel:
        return "/" + hashlib.blake2b(channel.encode(), digest_size=12).hexdigest()
    return channel


def slot_of(name: str) -> int:
    """The Redis Cluster hash slot of a key or shard channel name."""
    return int(key_slot(name.encode()))


def channel_slot(channel: str) -> int:
    """The Redis Cluster hash slot of a channel's pub/sub channel and presence keys."""
    return slot_of("{" + hash_tag(channel) + "}")


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Redis names of one deployment (``key_prefix``)."""

    prefix: str

    def channel(self, channel: str) -> str:
        return f"{self.prefix}:pub:{{{hash_tag(channel)}}}"

    def presence(self, channel: str) -> list[str]:
        """Members (client -> info), expiry (client -> ms), users (user -> count), client -> user."""
        base = f"{self.prefix}:presence:{{{hash_tag(channel)}}}"
        return [f"{base}:clients", f"{base}:expiry", f"{base}:users", f"{base}:client-users"]

    @property
    def control(self) -> str:
        return f"{self.prefix}:control"
