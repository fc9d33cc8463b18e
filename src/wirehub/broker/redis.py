"""Redis broker and presence: fan-out between gateway replicas, presence with expiry.

**Names.** Every key and channel starts with ``key_prefix``, so deployments can share one Redis.
A wirehub channel ``C`` is the Redis channel ``{prefix}:pub:{C}``; its presence lives in four
keys ``{prefix}:presence:{C}:*``. The braces make ``C`` their hash tag: in a Redis Cluster the
channel and its keys live on one shard, and channels spread over the shards. (A channel whose
name holds a brace gets a digest of its name as the tag instead.) Node-level control messages
travel on ``{prefix}:control``.

**Pub/sub side.** A node holds one pub/sub connection per Redis server it needs, a ``_Link``:
one for a single server; in a cluster, one per master that owns some of the node's channels,
with sharded pub/sub (``SSUBSCRIBE``), so that fan-out capacity grows with the shards. Each
wirehub channel is subscribed once per node (the Hub refcounts its local subscribers). A link's
reader decodes each envelope once and hands it to the listener: no work per subscriber here.

A link that breaks reconnects with capped, jittered exponential backoff, subscribes its
channels again and, once Redis has confirmed them (a ``PING`` sent after the subscribes comes
back), reports them to the listener as a gap: the Hub then repairs channels with history from
the store. A link that hears nothing for ``health_interval_s`` pings; no answer by the next
interval drops it. In a cluster, a ``MOVED`` reply or a shard channel that Redis unsubscribes
(its slot moved) refreshes the slot map and moves the channel to its new owner, again with a
gap.

**Command side.** Publishing (``PUBLISH``, or ``SPUBLISH`` in a cluster) and the presence
scripts use redis-py's asyncio client on a *blocking* pool of ``max_connections`` connections:
a command waits for a free connection instead of failing. A cluster client's per-node pools
raise when full, so a semaphore bounds them. Every driver error becomes ``BrokerUnavailable``.

This module (with the rest of ``wirehub.broker``) is the only one that imports ``redis``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, MovedError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from wirehub.broker.base import BrokerListener
from wirehub.broker.envelope import (
    EnvelopeError,
    decode_control,
    decode_info,
    decode_message,
    encode_control,
    encode_info,
    encode_message,
)
from wirehub.config import BrokerSettings
from wirehub.errors import BrokerUnavailable
from wirehub.types import BrokerMessage, ClientInfo, ControlMessage, PresenceStats

logger = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- command side


class RedisClient:
    """The command side, shared by a node's broker and presence: a bounded, blocking pool."""

    def __init__(self, url: str, *, cluster: bool = False, max_connections: int = 64) -> None:
        self.cluster = cluster
        self._url_options: dict[str, Any] = dict(parse_url(url))
        # TCP keepalive notices a vanished peer even when nothing is sent (not for unix sockets).
        self._tcp: dict[str, Any] = {} if url.startswith("unix://") else {"socket_keepalive": True}
        common: dict[str, Any] = {
            "protocol": 2,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": COMMAND_TIMEOUT_S,
            **self._tcp,
        }
        # Only a broken connection is worth one quick retry (a pooled connection that died with
        # a restarted Redis); a timed-out command may have run, and a retry could duplicate it.
        retry = Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), 2, (RedisConnectionError,))
        self._commands: Redis | RedisCluster
        if cluster:
            self._commands = RedisCluster.from_url(url, max_connections=max_connections, **common)
        else:
            pool = BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=POOL_TIMEOUT_S, retry=retry, **common
            )
            self._commands = Redis(connection_pool=pool)
        self._limit = asyncio.Semaphore(max_connections)
        self._down: dict[tuple[str, int] | None, asyncio.Task[None]] = {}
        """Servers (by address; None for the one server) that let a command time out, each with
        the task that probes it: commands to them fail at once until it answers again. (A server
        that refuses connections needs no such mark: that fails at once by itself.)"""

    async def check(self) -> None:
        """Reach Redis once (and learn a cluster's slots); ``BrokerUnavailable`` if it cannot."""
        try:
            if isinstance(self._commands, RedisCluster):
                await self._commands.initialize()
            else:
                await self._commands.ping()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable("broker unreachable") from exc

    async def ping(self) -> None:
        """One PING (to every master of a cluster) within PROBE_TIMEOUT_S; ``BrokerUnavailable`` if not."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                if isinstance(self._commands, RedisCluster):
                    await self._commands.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)
                else:
                    await self._commands.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"redis does not answer: {type(exc).__name__}") from exc

    @property
    def reachable(self) -> bool:
        """False while a server that let a command time out has not answered since."""
        return not self._down

    async def publish(self, name: str, data: bytes) -> None:
        server = self._server_of(name)
        try:
            if isinstance(self._commands, RedisCluster):
                async with self._limit:
                    await self._commands.execute_command("SPUBLISH", name, data)
            else:
                await self._commands.publish(name, data)
        except RedisTimeoutError as exc:
            self._mark_down(server, name)
            raise BrokerUnavailable("broker unavailable") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable("broker unavailable") from exc

    def register_script(self, lua: str) -> AsyncScript:
        return self._commands.register_script(lua)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | bytes]) -> Any:
        server = self._server_of(keys[0])
        try:
            async with self._limit:
                return await script(keys=list(keys), args=list(args))
        except RedisTimeoutError as exc:
            self._mark_down(server, keys[0])
            raise BrokerUnavailable("presence unavailable") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable("presence unavailable") from exc

    # ------------------------------------------------------------------ failing fast

    def _server_of(self, name: str) -> tuple[str, int] | None:
        """The server ``name`` lives on; ``BrokerUnavailable`` at once while it is known down.

        A frozen Redis answers nothing until the command timeout: without this, every caller
        would wait out a timeout of its own, one after another.
        """
        server: tuple[str, int] | None = None
        if self.cluster:
            try:
                server = self.address_of(name.encode())
            except Exception:  # slots not known yet: the command itself will learn them
                return None
        if server in self._down:
            raise BrokerUnavailable("broker unavailable")
        return server

    def answered(self, server: tuple[str, int] | None) -> None:
        """The server answered (a pub/sub link heard from it): stop failing commands to it."""
        probe = self._down.pop(server, None)
        if probe is not None:
            probe.cancel()
            logger.info("redis answers again", extra={"server": str(server or "")})

    def _mark_down(self, server: tuple[str, int] | None, name: str) -> None:
        if server in self._down or (self.cluster and server is None):
            return
        logger.warning(
            "redis does not answer; failing fast until it does", extra={"server": str(server or "")}
        )
        self._down[server] = asyncio.get_running_loop().create_task(self._probe(server, name))

    async def _probe(self, server: tuple[str, int] | None, name: str) -> None:
        """Ping the server every PROBE_INTERVAL_S until it answers, then let commands through again."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    if isinstance(self._commands, RedisCluster):
                        node = self._commands.get_node_from_key(name)
                        await self._commands.execute_command("PING", target_nodes=node)
                    else:
                        await self._commands.ping()
            except (RedisError, OSError, TimeoutError):
                continue
            self._down.pop(server, None)
            logger.info("redis answers again", extra={"server": str(server or "")})
            return

    # ------------------------------------------------------------------ pub/sub side

    def address_of(self, name: bytes) -> tuple[str, int] | None:
        """The master that owns ``name``'s slot (cluster), or None for the one server."""
        if not isinstance(self._commands, RedisCluster):
            return None
        try:
            node = self._commands.get_node_from_key(name.decode())
        except RedisError as exc:
            raise BrokerUnavailable("no cluster node owns the channel's slot") from exc
        if node is None:
            raise BrokerUnavailable("no cluster node owns the channel's slot")
        return str(node.host), int(node.port)

    async def refresh_topology(self) -> None:
        if isinstance(self._commands, RedisCluster):
            await self._commands.nodes_manager.initialize()

    def pubsub_connection(self, address: tuple[str, int] | None) -> Connection:
        """A connection of its own for pub/sub, outside the pool, never reconnecting by itself.

        No socket timeout: it waits for messages indefinitely, and its writes go out at once,
        in the order they are made. Its link owns reconnecting, so a reconnect never goes
        unnoticed (redis-py's PubSub reconnects and resubscribes silently).
        """
        options = dict(self._url_options)
        cls = cast(type[Connection], options.pop("connection_class", Connection))
        if address is not None:
            options["host"], options["port"] = address
            options.pop("db", None)
        options.update(
            protocol=2,
            socket_timeout=None,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=0,
            retry=Retry(NoBackoff(), 0),
            **self._tcp,
        )
        return cls(**options)

    async def close(self) -> None:
        for probe in self._down.values():
            probe.cancel()
        await asyncio.gather(*self._down.values(), return_exceptions=True)
        self._down.clear()
        with contextlib.suppress(RedisError, OSError):
            await self._commands.aclose()


# --------------------------------------------------------------------------- pub/sub links


@dataclass(slots=True)
class _Pending:
    """One channel of a (un)subscribe sent on a link, until Redis answers it."""

    subscribe: bool
    name: bytes
    done: asyncio.Future[None] | None

    def resolve(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


class _Link:
    """One pub/sub connection to one Redis server, kept open by a reconnect loop."""

    def __init__(self, broker: RedisBroker, address: tuple[str, int] | None) -> None:
        self.address = address
        self.label = f"{address[0]}:{address[1]}" if address else "redis"
        self._broker = broker
        self._subscribe_command = "SSUBSCRIBE" if address is not None else "SUBSCRIBE"
        self._unsubscribe_command = "SUNSUBSCRIBE" if address is not None else "UNSUBSCRIBE"
        self.channels: set[bytes] = set()
        """Redis channels this link is (or will be, once connected) subscribed to."""
        self.up = asyncio.Event()
        """Set once the link has been connected and subscribed; stays set."""
        self.failures = 0
        """Failed connection attempts since it was last up."""
        self._conn: Connection | None = None
        self._pending: deque[_Pending] = deque()
        """(Un)subscribes sent and not yet answered, one per channel, in the order sent: Redis
        answers in that order, so the oldest is what the next reply (or error) is about."""
        self._resync: tuple[bytes, frozenset[bytes]] | None = None
        self._deferred: set[bytes] = set()
        """Channels whose subscribe returned before the link was ever up."""
        self._markers = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Connected now (``up`` stays set through later outages)."""
        return self._conn is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"broker-link {self.label}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def abort(self) -> None:
        """Drop the connection: the link reconnects, resubscribes and reports the gap."""
        if self._reader is not None:
            self._reader.cancel()

    async def subscribe(self, name: bytes) -> None:
        """Subscribe and wait for Redis to confirm; while disconnected, on reconnect."""
        if name in self.channels:
            return
        self.channels.add(name)
        conn = self._conn
        if conn is None:
            # Connecting: the (re)subscribe includes it. A new link is normally up in a moment, so
            # wait for it; a link that is down (an outage) reports the channel as a gap instead.
            if not self.up.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CONNECT_TIMEOUT_S + CONFIRM_TIMEOUT_S):
                        await self.up.wait()
                if not self.up.is_set():
                    self._deferred.add(name)  # returned unconfirmed: report it when the link is up
            return
        await self._confirmed(conn, await self._send_subscribe(conn, [name]), "subscribe")

    async def unsubscribe(self, name: bytes) -> None:
        """Unsubscribe and wait for Redis to confirm (no message of it arrives after, anyway)."""
        if name not in self.channels:
            return
        self.channels.discard(name)
        conn = self._conn
        if conn is None:
            return  # (re)connecting: the resubscribe leaves it out
        pending = _Pending(False, name, asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        try:
            await conn.send_command(self._unsubscribe_command, name, check_health=False)
        except (RedisError, OSError):
            return  # the connection is gone, and the subscription with it
        await self._confirmed(conn, pending.done, "unsubscribe")

    async def _confirmed(self, conn: Connection, done: asyncio.Future[None] | None, what: str) -> None:
        if done is None:
            return  # not sent: the reader sees the broken connection; resubscribe and gap follow
        try:
            async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                await asyncio.shield(done)
        except TimeoutError:
            if self._conn is conn:
                logger.warning(
                    "broker command not confirmed, reconnecting", extra={"link": self.label, "command": what}
                )
                self.abort()

    async def _send_subscribe(self, conn: Connection, names: Sequence[bytes]) -> asyncio.Future[None] | None:
        """Send subscribes for ``names``; a future done once Redis answered the last (None if unsent)."""
        # The pub/sub connection has no socket timeout, so send_command writes before its first
        # await: what is appended to _pending here matches the order of the commands on the wire.
        done: asyncio.Future[None] | None = None
        step = SUBSCRIBE_BATCH if self.address is None else 1  # a cluster refuses SSUBSCRIBE across slots
        try:
            for start in range(0, len(names), step):
                batch = names[start : start + step]
                done = asyncio.get_running_loop().create_future()
                self._pending.extend(_Pending(True, name, None) for name in batch[:-1])
                self._pending.append(_Pending(True, batch[-1], done))
                await conn.send_command(self._subscribe_command, *batch, check_health=False)
        except (RedisError, OSError):
            return None
        return done

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        attempt = 0
        while True:
            conn = self._broker.client.pubsub_connection(self.address)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await conn.connect()  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                await _disconnect(conn)
                self.failures += 1
                level = logging.WARNING if self.failures == 1 else logging.DEBUG
                logger.log(level, "broker link cannot connect", extra={"link": self.label, "error": str(exc)})
                self._broker.link_failed(self)
                await asyncio.sleep(self._broker.backoff(attempt))
                attempt += 1
                continue
            reader = asyncio.get_running_loop().create_task(self._serve(conn))
            self._reader = reader
            error: str
            try:
                await reader
                error = "reader ended"  # pragma: no cover - _serve only ends by raising
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the link is closing
                error = "aborted"
            except (RedisError, OSError) as exc:
                error = str(exc) or type(exc).__name__
            except Exception:
                logger.exception("broker link failed", extra={"link": self.label})
                error = "internal error"
            finally:
                self._reader = None
                self._conn = None
                self._reset()
                await _disconnect(conn)
            logger.warning("broker link lost, reconnecting", extra={"link": self.label, "error": error})
            attempt = 0
            await asyncio.sleep(self._broker.backoff(attempt))
            attempt = 1

    def _reset(self) -> None:
        for pending in self._pending:
            pending.resolve()  # subscribed channels stay wanted: resubscribed, with a gap
        self._pending.clear()
        self._resync = None

    async def _serve(self, conn: Connection) -> None:
        names = frozenset(self.channels)
        marker = b"resync-%d" % next(self._markers)
        self._conn = conn
        self._resync = (marker, names)
        await self._send_subscribe(conn, sorted(names))
        # Redis answers in order: when this comes back, every subscribe above is in effect.
        await conn.send_command("PING", marker, check_health=False)
        unanswered = False
        while True:
            try:
                response = await conn.read_response(timeout=self._broker.health_interval_s)
            except ResponseError as exc:
                self._on_error_reply(exc)
                continue
            if response is None:
                if unanswered:
                    raise RedisTimeoutError("no reply to a health check")
                unanswered = True
                await conn.send_command("PING", HEALTH, check_health=False)
                continue
            unanswered = False
            self._on_reply(response)

    def _on_reply(self, response: Any) -> None:
        if not isinstance(response, list):
            # A PING answered outside subscribed mode (the link has no channel right now).
            self._on_pong(response)
            return
        kind = response[0]
        if kind == b"message" or kind == b"smessage":
            self._broker.on_redis_message(response[1], response[2])
        elif kind == b"subscribe" or kind == b"ssubscribe":
            head = self._pending.popleft() if self._pending else None
            if head is None or not head.subscribe or head.name != response[1]:
                raise InvalidResponse("subscribe reply out of order")  # drop the link: resync
            head.resolve()
        elif kind == b"unsubscribe" or kind == b"sunsubscribe":
            name = response[1]
            head = self._pending[0] if self._pending else None
            if head is not None and not head.subscribe and head.name == name:
                self._pending.popleft().resolve()  # the reply to our unsubscribe
            elif name in self.channels:
                # Redis dropped a shard channel we still want: its slot moved to another master.
                self.channels.discard(name)
                self._broker.moved(name)
        elif kind == b"pong":
            self._on_pong(response[1])

    def _on_pong(self, payload: Any) -> None:
        self._broker.client.answered(self.address)  # the server answers: commands may go again
        if self._resync is not None and payload == self._resync[0]:
            # What a MOVED reply refused meanwhile is not subscribed here: the rebalance has it.
            names = self._resync[1] & self.channels
            self._resync = None
            if self.up.is_set() or self.failures:
                logger.info("broker link up", extra={"link": self.label, "channels": len(names)})
            if not self.up.is_set():
                # A first connect: subscribers waited for it, except those that gave up waiting.
                names &= self._deferred
            self._deferred.clear()
            self.failures = 0
            self.up.set()
            self._broker.resubscribed(names)

    def _on_error_reply(self, exc: ResponseError) -> None:
        # Only (un)subscribes can fail here, and Redis answers in order: the oldest one failed.
        head = self._pending.popleft() if self._pending else None
        if head is None or not isinstance(exc, MovedError):
            raise exc  # anything else (ACL, misconfiguration): drop the link, log, retry with backoff
        head.resolve()
        if head.subscribe and head.name in self.channels:
            # The slot has another owner by now: the broker moves the channel there.
            self.channels.discard(head.name)
            self._broker.moved(head.name)
        # An unsubscribe answered MOVED: the slot moved away, and our subscription with it.


async def _disconnect(conn: Connection) -> None:
    with contextlib.suppress(RedisError, OSError):
        await conn.disconnect(nowait=True)


# --------------------------------------------------------------------------- broker


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
        self._link_of: dict[bytes, _Link] = {}
        self._links: dict[tuple[str, int] | None, _Link] = {}
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
        if self._rebalancer is not None:
            self._rebalancer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rebalancer
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

    def link_failed(self, link: _Link) -> None:
        if self.client.cluster and link.failures >= 3:
            self._rebalance_wanted.set()  # perhaps a failover: the slots may have new owners

    def backoff(self, attempt: int) -> float:
        ceiling = min(self._reconnect_max_s, self._reconnect_min_s * 2 ** min(attempt, 30))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    # ------------------------------------------------------------------ links and shards

    def _link_for(self, name: bytes) -> _Link:
        address = self.client.address_of(name)
        link = self._links.get(address)
        if link is None:
            link = _Link(self, address)
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


# --------------------------------------------------------------------------- presence

# KEYS: clients (hash client -> info), expiry (zset client -> ms), users (hash user -> count of
# clients), client-users (hash client -> user). Scores are in the caller's clock (ms), so every
# replica compares against the same kind of time; each script first drops expired entries.
_CLEAN = """
local function clean(now)
  local expired = redis.call('zrangebyscore', KEYS[2], '-inf', now)
  for _, client in ipairs(expired) do
    redis.call('zrem', KEYS[2], client)
    redis.call('hdel', KEYS[1], client)
    local user = redis.call('hget', KEYS[4], client)
    if user then
      redis.call('hdel', KEYS[4], client)
      if redis.call('hincrby', KEYS[3], user, -1) <= 0 then
        redis.call('hdel', KEYS[3], user)
      end
    end
  end
end
"""

# ARGV: now, expire_at, client, info, user
_ADD = (
    _CLEAN
    + """
clean(ARGV[1])
redis.call('hset', KEYS[1], ARGV[3], ARGV[4])
redis.call('zadd', KEYS[2], ARGV[2], ARGV[3])
local old = redis.call('hget', KEYS[4], ARGV[3])
if old ~= ARGV[5] then
  if old then
    if redis.call('hincrby', KEYS[3], old, -1) <= 0 then
      redis.call('hdel', KEYS[3], old)
    end
  end
  redis.call('hset', KEYS[4], ARGV[3], ARGV[5])
  redis.call('hincrby', KEYS[3], ARGV[5], 1)
end
-- The keys live as long as their longest-lived entry: a crashed node leaves nothing behind.
local last = redis.call('zrange', KEYS[2], -1, -1, 'WITHSCORES')
local ttl = math.max(1, math.ceil(tonumber(last[2]) - tonumber(ARGV[1])))
for i = 1, 4 do
  redis.call('pexpire', KEYS[i], ttl)
end
return 1
"""
)

# ARGV: client
_REMOVE = """
redis.call('zrem', KEYS[2], ARGV[1])
redis.call('hdel', KEYS[1], ARGV[1])
local user = redis.call('hget', KEYS[4], ARGV[1])
if user then
  redis.call('hdel', KEYS[4], ARGV[1])
  if redis.call('hincrby', KEYS[3], user, -1) <= 0 then
    redis.call('hdel', KEYS[3], user)
  end
end
return 1
"""

# ARGV: now
_MEMBERS = _CLEAN + "\nclean(ARGV[1])\nreturn redis.call('hgetall', KEYS[1])\n"
_STATS = _CLEAN + "\nclean(ARGV[1])\nreturn {redis.call('zcard', KEYS[2]), redis.call('hlen', KEYS[3])}\n"


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


def open_redis(settings: BrokerSettings) -> tuple[RedisBroker, RedisPresence]:
    """The broker and presence of ``settings``, sharing one pool; closing the broker closes it."""
    client = RedisClient(settings.url, cluster=settings.cluster, max_connections=settings.max_connections)
    broker = RedisBroker(client, key_prefix=settings.key_prefix, owns_client=True)
    presence = RedisPresence(client, key_prefix=settings.key_prefix)
    return broker, presence
