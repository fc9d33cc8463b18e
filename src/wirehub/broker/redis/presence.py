"""RedisPresence: presence with expiry, kept by Lua scripts (``*.lua`` beside this module).

The package docstring (``wirehub.broker.redis``) tells the whole design."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from importlib import resources

from wirehub.broker.envelope import (
    EnvelopeError,
    decode_info,
    encode_info,
)
from wirehub.broker.redis.client import RedisClient
from wirehub.broker.redis.keys import KeySpace
from wirehub.types import ClientInfo, PresenceStats

__all__ = ["RedisPresence"]

logger = logging.getLogger(__name__)


def _script(name: str, *, clean: bool = False) -> str:
    """The Lua script ``presence_{name}.lua`` of this package, after ``presence_clean.lua``'s
    ``clean`` function when the script calls it."""
    files = resources.files(__package__)
    text = (files / f"presence_{name}.lua").read_text(encoding="utf-8")
    return (files / "presence_clean.lua").read_text(encoding="utf-8") + "\n" + text if clean else text


# Read once, at import: a missing file fails at start-up, not at the first presence call.
_ADD = _script("add", clean=True)
_REMOVE = _script("remove")
_MEMBERS = _script("members", clean=True)
_STATS = _script("stats", clean=True)


class RedisPresence:
    """Implements ``Presence`` in Redis: entries expire by score, and whole keys by ``PEXPIRE``.

    ``clock`` gives wall-clock seconds, the same on every replica (give a fake one in tests).
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        key_prefix: str,
        clock: Callable[[], float] = time.time,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._keys = KeySpace(key_prefix)
        self._clock = clock
        self._owns_client = owns_client
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)
        self._members = client.register_script(_MEMBERS)
        self._stats = client.register_script(_STATS)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def add(self, channel: str, info: ClientInfo, *, ttl_s: float) -> None:
        now = self._now_ms()
        expire_at = now + max(1, int(ttl_s * 1000))
        await self._client.run(
            self._add,
            self._keys.presence(channel),
            [now, expire_at, info.client, encode_info(info), info.user],
        )

    async def remove(self, channel: str, client_id: str) -> None:
        await self._client.run(self._remove, self._keys.presence(channel), [client_id])

    async def members(self, channel: str) -> Mapping[str, ClientInfo]:
        flat = await self._client.run(self._members, self._keys.presence(channel), [self._now_ms()])
        members: dict[str, ClientInfo] = {}
        for i in range(0, len(flat) - 1, 2):
            try:
                info = decode_info(flat[i + 1])
            except EnvelopeError as exc:
                logger.warning("presence entry unreadable", extra={"channel": channel, "error": str(exc)})
                continue
            members[info.client] = info
        return members

    async def stats(self, channel: str) -> PresenceStats:
        clients, users = await self._client.run(self._stats, self._keys.presence(channel), [self._now_ms()])
        return PresenceStats(int(clients), int(users))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()
