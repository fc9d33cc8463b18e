"""Helpers shared by the test modules: unique names, gateways for one test or module, raw clients.

Fixtures built on these live in ``tests/conftest.py`` (and ``tests/integration/conftest.py``);
the helpers here are plain functions and classes that test modules import.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tests.gateway_process import GatewayProcess
from tests.raw_client import RawClient
from wirehub.server.outbox import FLUSH_AFTER_TURNS

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 10.0, interval_s: float = 0.05
) -> T:
    """Ask ``probe`` until it answers something truthy, and return that; TimeoutError past
    ``timeout_s``. Only for what announces itself by no event a test can await: a line in another
    process's log, a gauge on a scraped page, a load balancer's health checks, a replica heard of.
    """
    async with asyncio.timeout(timeout_s):
        while not (answer := await probe()):  # noqa: ASYNC110 - no event to wait on: see above
            await asyncio.sleep(interval_s)
    assert answer is not None  # truthy
    return answer


CLOSE_TIMEOUT_S = 5.0
"""How long closing one raw client may take at teardown before its transport is aborted."""


def unique(prefix: str) -> str:
    """``prefix`` followed by random hex: a channel or user name no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


class FakeClock:
    """A clock that only moves when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def next_turn() -> None:
    """Let every task that is ready run one step: a yield to the event loop, not a timed wait.

    For code under test that reacts in the same turn (a task waiting on a queue the test fed, a
    callback scheduled with ``call_soon``); the step it takes is deterministic.
    """
    await asyncio.sleep(0)


async def writes_done() -> None:
    """Let the outboxes write what was offered: the turns the flush scheduler waits, and its own.

    Each of those turns is a yield to the event loop (``next_turn``), not a timed wait.
    """
    for _ in range(FLUSH_AFTER_TURNS + 1):
        await next_turn()


class ManualClock:
    """An event loop's clock for ``Deadlines``: it moves only when the test says so (``advance``)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.scheduled: list[tuple[float, Callable[[], object], list[bool]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> ManualHandle:
        handle = ManualHandle()
        self.scheduled.append((when, callback, handle.cancelled))
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while True:
            due = [entry for entry in self.scheduled if entry[0] <= self.now and not entry[2][0]]
            if not due:
                return
            entry = min(due, key=lambda e: e[0])
            self.scheduled.remove(entry)
            entry[1]()

    @property
    def live(self) -> int:
        return sum(1 for _, _, cancelled in self.scheduled if not cancelled[0])


class ManualHandle:
    def __init__(self) -> None:
        self.cancelled = [False]

    def cancel(self) -> None:
        self.cancelled[0] = True


@contextlib.asynccontextmanager
async def running_gateway(
    workdir: Path, *, config: str | None = None, env: Mapping[str, str] | None = None, app: str | None = None
) -> AsyncIterator[GatewayProcess]:
    """A started ``wirehub serve`` process in ``workdir``, killed on leaving the block."""
    gateway = GatewayProcess(workdir, config=config, env=env, app=app)
    try:
        await gateway.start()
        yield gateway
    finally:
        await gateway.kill()


class Gateways:
    """Starts ``wirehub serve`` processes, each in a folder of its own under ``root``; ``close()``
    ends them all (a supervisor of ``--workers`` gets SIGTERM first, to stop its workers)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[GatewayProcess] = []

    async def start(
        self,
        config: str | None = None,
        env: Mapping[str, str] | None = None,
        app: str | None = None,
        args: Sequence[str] = (),
    ) -> GatewayProcess:
        workdir = self.root / f"gw{len(self.started)}"
        workdir.mkdir()
        gateway = GatewayProcess(workdir, config=config, env=env, app=app, args=args)
        self.started.append(gateway)
        await gateway.start()
        return gateway

    async def close(self) -> None:
        for gateway in self.started:
            if "--workers" in gateway.args:
                await gateway.stop()
            await gateway.kill()


class Clients:
    """Opens raw clients on gateways and closes whatever is still open when the test ends."""

    def __init__(self) -> None:
        self._open: list[RawClient] = []

    async def open(self, gateway: GatewayProcess, **connect_kwargs: Any) -> RawClient:
        """A raw client on ``gateway`` (``connect_kwargs`` go to the WebSocket connect)."""
        client = await RawClient.open(gateway.ws_url, **connect_kwargs)
        self._open.append(client)
        return client

    async def connected(self, gateway: GatewayProcess, user: str = "alice", **token: Any) -> RawClient:
        """A client whose connect with a fresh token for ``user`` (claims ``token``) succeeded."""
        client = await self.open(gateway)
        reply = await client.connect(gateway.token(user, **token))
        assert "connect" in reply, reply
        return client

    async def close_all(self) -> None:
        """Close every client; one that does not close in time has its transport aborted."""
        for client in self._open:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await client.close()
            except TimeoutError:
                client.ws.transport.abort()


async def assert_closed_with(client: RawClient, code: int) -> None:
    """The server closes ``client`` with ``code`` and a reason that fits a close frame."""
    closed_code, reason = await client.closed()
    assert closed_code == code, (closed_code, reason)
    assert len(reason.encode()) < 123


def assert_error(reply: dict[str, Any], code: int, *, temporary: bool = False) -> None:
    """The reply is an error with ``code``, marked temporary exactly when ``temporary``."""
    error = reply.get("error")
    assert error is not None, f"expected error {code}, got {reply}"
    assert error["code"] == code, reply
    assert error.get("temporary", False) is temporary, reply


async def tiny_buffer_socket(ws_url: str) -> socket.socket:
    """A socket connected to the gateway at ``ws_url`` with a 4 KiB receive buffer.

    A client on it with ``max_queue=1`` holds at most one frame until it reads, so a server
    writing to a client that never reads soon fills its write queue.
    """
    url = urlsplit(ws_url)
    assert url.hostname is not None
    assert url.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
    return sock
