"""RedisClient: the command side (publishing, the presence scripts) on a blocking pool.

The package docstring (``wirehub.broker.redis``) tells the whole design."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from wirehub.broker.redis.keys import (
    COMMAND_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    POOL_TIMEOUT_S,
    PROBE_INTERVAL_S,
    PROBE_TIMEOUT_S,
)
from wirehub.errors import BrokerUnavailable
from wirehub.tasks import cancel_all

__all__ = ["RedisClient"]

logger = logging.getLogger(__name__)


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
        await cancel_all(self._down.values())
        self._down.clear()
        with contextlib.suppress(RedisError, OSError):
            await self._commands.aclose()
