"""RedisBroker: the ``Broker`` over the pub/sub links and the command client.

The package docstring (``wirehub.broker.redis``) tells the whole design."""

from __future__ import annotations

import asyncio
import logging
import random

from redis.exceptions import RedisError

from wirehub.broker.base import BrokerListener
from wirehub.broker.envelope import (
    EnvelopeError,
    decode_control,
    decode_message,
    encode_control,
    encode_message,
)
from wirehub.broker.redis.client import RedisClient
from wirehub.broker.redis.keys import CONFIRM_TIMEOUT_S, CONNECT_TIMEOUT_S, KeySpace
from wirehub.broker.redis.links import Link
from wirehub.broker.redis.presence import RedisPresence
from wirehub.config import BrokerSettings
from wirehub.errors import BrokerUnavailable
from wirehub.tasks import cancel_and_wait
from wirehub.types import BrokerMessage, ControlMessage

__all__ = ["RedisBroker", "open_redis"]

logger = logging.getLogger(__name__)


class RedisBroker:
    """Implements ``Broker`` over Redis pub/sub; see the module docstring."""

    def __init__(
        self,
        client: RedisClient,
        *,
        key_prefix: str,
        owns_client: bool = True,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        health_interval_s: float = 5.0,
    ) -> None:
        self.client = client
        self.keys = KeySpace(key_prefix)
        self.health_interval_s = health_interval_s
        self._owns_client = owns_client
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._listener: BrokerListener | None = None
        self._control = self.keys.control.encode()
        self._channel_of: dict[bytes, str] = {}
        """Redis channel -> wirehub channel, for every channel this node wants."""
        self._link_of: dict[bytes, Link] = {}
        self._links: dict[tuple[str, int] | None, Link] = {}
        self._rebalance_wanted = asyncio.Event()
        self._rebalancer: asyncio.Task[None] | None = None

    async def start(self, listener: BrokerListener) -> None:
        """Reach Redis (``BrokerUnavailable`` if it cannot), then open the pub/sub links."""
        self._listener = listener
        await self.client.check()
        link = self._link_for(self._control)
        link.channels.add(self._control)
        self._link_of[self._control] = link
        if self.client.cluster:
            self._rebalancer = asyncio.get_running_loop().create_task(self._rebalance_loop())
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S + CONFIRM_TIMEOUT_S):
                await link.up.wait()
        except TimeoutError:
            logger.warning("broker link not up yet; carrying on while it connects")

    async def close(self) -> None:
        await cancel_and_wait(self._rebalancer)
        self._rebalancer = None
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.close()
        self._link_of.clear()
        self._channel_of.clear()
        self._listener = None
        if self._owns_client:
            await self.client.close()

    async def subscribe(self, channel: str) -> None:
        name = self.keys.channel(channel).encode()
        self._channel_of[name] = channel
        link = self._link_of.get(name)
        if link is None:
            link = self._link_for(name)
            self._link_of[name] = link
        await link.subscribe(name)

    async def unsubscribe(self, channel: str) -> None:
        name = self.keys.channel(channel).encode()
        if self._channel_of.pop(name, None) is None:
            return
        link = self._link_of.pop(name, None)
        if link is not None:
            await link.unsubscribe(name)

    async def publish(self, channel: str, message: BrokerMessage) -> None:
        await self.client.publish(self.keys.channel(channel), encode_message(message))

    def publish_now(self, channel: str, message: BrokerMessage) -> bool:
        return False  # a publish waits for Redis's answer: it may fail

    async def publish_control(self, message: ControlMessage) -> None:
        await self.client.publish(self.keys.control, encode_control(message))

    async def check(self) -> None:
        """Ready while every pub/sub link is connected and Redis answers a PING."""
        down = sorted(link.label for link in self._links.values() if not link.connected)
        if down:
            raise BrokerUnavailable(f"pub/sub link down: {', '.join(down)}")
        if not self.client.reachable:
            raise BrokerUnavailable("redis let a command time out and has not answered since")
        await self.client.ping()

    # ------------------------------------------------------------------ from the links

    def on_redis_message(self, name: bytes, data: bytes) -> None:
        """The hot path: one decode per message per node, then the listener."""
        listener = self._listener
        if listener is None:
            return
        channel = self._channel_of.get(name)
        try:
            if channel is not None:
                listener.on_message(channel, decode_message(data))
            elif name == self._control:
                listener.on_control(decode_control(data))
        except EnvelopeError as exc:
            logger.warning("broker dropped an unreadable envelope", extra={"error": str(exc)})
        except Exception:
            # The listener's failure is not the link's: keep reading.
            logger.exception("broker listener failed", extra={"channel": channel})

    def resubscribed(self, names: frozenset[bytes]) -> None:
        """A link subscribed these again after (re)connecting: their messages may be lost."""
        channels = frozenset(self._channel_of[n] for n in names if n in self._channel_of)
        if channels and self._listener is not None:
            self._listener.on_gap(channels)

    def moved(self, name: bytes) -> None:
        """A cluster shard no longer serves this channel: find its owner and move it there."""
        self._link_of.pop(name, None)
        self._rebalance_wanted.set()

    def link_failed(self, link: Link) -> None:
        if self.client.cluster and link.failures >= 3:
            self._rebalance_wanted.set()  # perhaps a failover: the slots may have new owners

    def backoff(self, attempt: int) -> float:
        ceiling = min(self._reconnect_max_s, self._reconnect_min_s * 2 ** min(attempt, 30))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    # ------------------------------------------------------------------ links and shards

    def _link_for(self, name: bytes) -> Link:
        address = self.client.address_of(name)
        link = self._links.get(address)
        if link is None:
            link = Link(self, address)
            self._links[address] = link
            link.start()
        return link

    async def _rebalance_loop(self) -> None:
        attempt = 0
        while True:
            await self._rebalance_wanted.wait()
            self._rebalance_wanted.clear()
            try:
                await self.client.refresh_topology()
                await self._rebalance()
                attempt = 0
            except (RedisError, OSError, BrokerUnavailable) as exc:
                logger.warning("broker cannot refresh the cluster slots", extra={"error": str(exc)})
                self._rebalance_wanted.set()
                attempt += 1
            # Throttled: during a resharding, MOVED replies come in bursts.
            await asyncio.sleep(self.backoff(attempt))

    async def _rebalance(self) -> None:
        """Put every wanted channel on the link of its slot's current owner."""
        moved: set[str] = set()
        for name in [self._control, *self._channel_of]:
            if name != self._control and name not in self._channel_of:
                continue  # unsubscribed meanwhile
            link = self._link_for(name)
            old = self._link_of.get(name)
            if old is link and name in link.channels:
                continue
            if old is not None and old is not link:
                await old.unsubscribe(name)
            self._link_of[name] = link
            await link.subscribe(name)
            channel = self._channel_of.get(name)
            if channel is not None and name in link.channels:
                moved.add(channel)
            # else refused (MOVED: the slot map is still settling), and another pass is due.
        for address, link in list(self._links.items()):
            if not link.channels:
                del self._links[address]
                await link.close()
        if moved:
            logger.info("broker moved channels to their new shards", extra={"channels": len(moved)})
            if self._listener is not None:
                self._listener.on_gap(frozenset(moved))


def open_redis(settings: BrokerSettings) -> tuple[RedisBroker, RedisPresence]:
    """The broker and presence of ``settings``, sharing one pool; closing the broker closes it."""
    client = RedisClient(settings.url, cluster=settings.cluster, max_connections=settings.max_connections)
    broker = RedisBroker(client, key_prefix=settings.key_prefix, owns_client=True)
    presence = RedisPresence(client, key_prefix=settings.key_prefix)
    return broker, presence
