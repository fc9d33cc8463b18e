"""``wirehub serve --workers N``: N gateway processes sharing one WebSocket and one HTTP port.

One Python process runs its event loop on one core. The supervisor here starts N ordinary
``wirehub serve`` processes that listen with ``SO_REUSEPORT`` on the same ports, so the kernel
spreads new connections over them; they are replicas like any other, meeting on the Redis broker
(the in-process broker cannot join them, so it is refused). Each worker's internal listener, when
enabled, gets its own port (``internal_port + i``) so that each can be scraped.

The supervisor restarts a worker that dies, with a growing pause, and on SIGTERM or SIGINT passes
the signal on and waits for every worker to drain. A port of 0 (any free port) is fixed first by a
socket the supervisor binds, with ``SO_REUSEPORT``, and keeps bound without listening: the port
stays reserved for the workers, and the kernel never hands that socket a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wirehub.config import Settings
from wirehub.errors import StartupError
from wirehub.tasks import cancel_all

__all__ = ["WorkerPorts", "check_workers", "run_workers"]

logger = logging.getLogger(__name__)

_LISTENING = re.compile(r"^wirehub listening on ")
_PR_SET_PDEATHSIG = 1
RESTART_PAUSES_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Pauses before restarting a worker that died, growing with each death in a row."""
HEALTHY_AFTER_S = 30.0
"""A worker that ran this long before dying starts the pauses from the first again."""


@dataclass(frozen=True, slots=True)
class WorkerPorts:
    """The ports one worker listens on, passed on its command line (``--worker-ports``)."""

    ws: int
    http: int
    internal: int

    def argument(self) -> str:
        return f"{self.ws},{self.http},{self.internal}"

    @classmethod
    def parse(cls, text: str) -> WorkerPorts:
        ws, http, internal = (int(part) for part in text.split(","))
        return cls(ws, http, internal)


def check_workers(settings: Settings, count: int) -> None:
    """Refuse worker setups that cannot work, with the setting to change."""
    if count < 1:
        raise StartupError(f"--workers {count}: must be at least 1")
    if count > 1 and not settings.broker.url.startswith(("redis://", "rediss://", "unix://")):
        raise StartupError(
            f"--workers {count}: the workers must share a broker, and broker.url is"
            f" {settings.broker.url!r} (in-process): set broker.url to a Redis URL"
        )


def _reserve(host: str, port: int) -> socket.socket:
    """A bound, not listening, ``SO_REUSEPORT`` socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _die_with_parent() -> None:
    """In the worker, before it runs: SIGTERM it when the supervisor dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Worker:
    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        self.argv = argv
        self.process: asyncio.subprocess.Process | None = None
        self.relay: asyncio.Task[None] | None = None
        """Copies the worker's standard output (after its listening line) to ours."""
        self.deaths_in_a_row = 0

    async def start(self) -> str:
        """Start the worker and return its ``listening on`` line (StartupError if it exits first)."""
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent
        )
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode(errors="replace"):
            if _LISTENING.match(line):
                # Kept: the loop holds tasks weakly, and the relay runs for the worker's life.
                self.relay = asyncio.get_running_loop().create_task(self._relay(self.process.stdout))
                return line.strip()
            sys.stdout.write(line)
        code = await self.process.wait()
        raise StartupError(f"worker {self.index} exited with code {code} before listening")

    @staticmethod
    async def _relay(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()


async def run_workers(
    settings: Settings,
    count: int,
    worker_argv: Callable[[WorkerPorts], list[str]],
    *,
    announce: Callable[[str], None],
) -> int:
    """Run ``count`` workers until SIGTERM or SIGINT; ``worker_argv`` gives each one's command."""
    check_workers(settings, count)
    reserved = [
        _reserve(settings.server.host, settings.server.port),
        _reserve(settings.http.host, settings.http.port),
    ]
    try:
        ws_port, http_port = (sock.getsockname()[1] for sock in reserved)
        h = settings.http
        workers = [
            _Worker(
                i, worker_argv(WorkerPorts(ws_port, http_port, h.internal_port + i if h.internal_port else 0))
            )
            for i in range(count)
        ]
        return await _supervise(workers, settings.server.shutdown_timeout_s, announce)
    finally:
        for sock in reserved:
            sock.close()


async def _supervise(
    workers: Sequence[_Worker], drain_timeout_s: float, announce: Callable[[str], None]
) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        try:
            lines = await asyncio.gather(*(w.start() for w in workers))
        except StartupError:
            await _stop_all(workers, drain_timeout_s)
            raise
        pids = ", ".join(str(w.process.pid) for w in workers if w.process is not None)
        announce(f"{lines[0]} ({len(workers)} workers: pids {pids})")
        watchers = [asyncio.create_task(_keep_running(w, stopping)) for w in workers]
        await stopping.wait()
        await _stop_all(workers, drain_timeout_s)
        await cancel_all(watchers)
        return 0
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _keep_running(worker: _Worker, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        assert worker.process is not None
        started = time.monotonic()
        code = await worker.process.wait()
        if stopping.is_set():
            return
        if time.monotonic() - started >= HEALTHY_AFTER_S:
            worker.deaths_in_a_row = 0
        pause = RESTART_PAUSES_S[min(worker.deaths_in_a_row, len(RESTART_PAUSES_S) - 1)]
        worker.deaths_in_a_row += 1
        logger.warning(
            "worker exited",
            extra={"worker": worker.index, "pid": worker.process.pid, "code": code, "restart_in_s": pause},
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pause):
                await stopping.wait()
        if stopping.is_set():
            return
        try:
            await worker.start()
        except StartupError as exc:
            logger.warning("worker restart failed", extra={"worker": worker.index, "error": str(exc)})
            continue
        logger.info("worker restarted", extra={"worker": worker.index, "pid": worker.process.pid})


async def _stop_all(workers: Sequence[_Worker], drain_timeout_s: float) -> None:
    """SIGTERM every worker (each drains its clients with 3001), SIGKILL those still there after."""
    running = [w.process for w in workers if w.process is not None and w.process.returncode is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(drain_timeout_s + 5):
            await asyncio.gather(*(p.wait() for p in running))
    except TimeoutError:
        for process in running:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await asyncio.gather(*(p.wait() for p in running))
