"""The pub/sub side: one ``Link`` per Redis server a node needs, which reconnects and reports gaps.

The package docstring (``wirehub.broker.redis``) tells the whole design."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio.connection import Connection
from redis.exceptions import InvalidResponse, MovedError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from wirehub.broker.redis.client import RedisClient
from wirehub.broker.redis.keys import CONFIRM_TIMEOUT_S, CONNECT_TIMEOUT_S, HEALTH, SUBSCRIBE_BATCH
from wirehub.tasks import cancel_and_wait

__all__ = ["Link", "LinkOwner", "disconnect"]

logger = logging.getLogger(__name__)


class LinkOwner(Protocol):
    """What a link needs of the broker that owns it (``RedisBroker``)."""

    client: RedisClient
    health_interval_s: float

    def on_redis_message(self, name: bytes, data: bytes) -> None: ...

    def resubscribed(self, names: frozenset[bytes]) -> None: ...

    def moved(self, name: bytes) -> None: ...

    def link_failed(self, link: Link) -> None: ...

    def backoff(self, attempt: int) -> float: ...


@dataclass(slots=True)
class _Pending:
    """One channel of a (un)subscribe sent on a link, until Redis answers it."""

    subscribe: bool
    name: bytes
    done: asyncio.Future[None] | None

    def resolve(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


class Link:
    """One pub/sub connection to one Redis server, kept open by a reconnect loop."""

    def __init__(self, broker: LinkOwner, address: tuple[str, int] | None) -> None:
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
        await cancel_and_wait(self._task)
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
                await disconnect(conn)
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
                await disconnect(conn)
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


async def disconnect(conn: Connection) -> None:
    with contextlib.suppress(RedisError, OSError):
        await conn.disconnect(nowait=True)
