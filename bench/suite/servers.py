"""The servers under test, each started as a fresh process on loopback ports below the ephemeral range.

* ``bare``: ``bench/bare_server.py``, rooms and ``websockets.broadcast()`` and nothing else.
* ``node-ws`` and ``socketio``: the Node baselines in ``bench/node/servers/``, rooms on the npm
  ``ws`` package (the bare server's protocol) and on Socket.IO 4 (its own protocol).
* ``wirehub``: ``wirehub serve`` (started by ``tests/gateway_process.py``'s ``GatewayProcess``)
  with the suite's configuration: pure fan-out channels, or channels with history on SQLite or
  on the MongoDB stand-in (``tests/services.py``'s ``MongoStandIn``, started beside it).
"""

from __future__ import annotations

import asyncio
import enum
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from tests.gateway_process import GatewayProcess
from tests.services import MongoStandIn

from bench.suite.ports import PortAllocator

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "bench" / "node"
START_TIMEOUT_S = 20.0

# The handshake and per-connection command rate limits are off, and the cap on one address's
# open connections too (the generator's 5,000 come from one address): the benchmark measures the
# delivery path, not the limits. ``bench`` is pure fan-out (no history, presence, join/leave);
# ``hist`` keeps a history of 100 publications, so every publish is appended to the store first.
WIREHUB_CONFIG = """\
[server]
max_connections_per_address = 0

[client]
connection_rate_per_s = 0
connection_rate_per_address_per_s = 0
command_rate_per_s = 0

[namespaces.bench]
allow_subscribe_for_client = true
allow_publish_for_client = true

[namespaces.hist]
allow_subscribe_for_client = true
allow_publish_for_client = true
history_size = 100
history_ttl_s = 3600.0
"""


class Store(enum.Enum):
    SQLITE = "sqlite"
    MONGO = "mongo"


class Server(Protocol):
    """What the generator needs to know about a running server."""

    @property
    def url(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def aux_pids(self) -> list[int]:
        """Other processes of the system under test (a store server): their CPU is reported apart."""
        ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """One kind of server in the suite: how to start it and how the generator talks to it."""

    key: str
    """A baseline's key names its server class in ``BASELINE_SERVERS``; any other key is wirehub."""
    label: str
    protocol: str
    """The generator's protocol: ``wirehub``, ``bare`` or ``socketio``."""
    namespace: str = "bench"
    """wirehub's channel namespace (the baselines have none)."""
    store: Store = Store.SQLITE

    def server(self, workdir: Path, ports: PortAllocator) -> Server:
        baseline = BASELINE_SERVERS.get(self.key)
        if baseline is not None:
            return baseline(workdir, ports.take())
        return WirehubServer(workdir, ports, self.store)

    def unavailable(self) -> str | None:
        """Why this server cannot run here (a runtime or package missing), or None."""
        baseline = BASELINE_SERVERS.get(self.key)
        return None if baseline is None else baseline.unavailable()


class BaselineServer:
    """A baseline: one process on one port that prints ``listening on ...`` once it listens."""

    name: ClassVar[str]
    """For the log file and messages."""
    path: ClassVar[str] = "/"
    """The WebSocket endpoint's path and query."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @classmethod
    def unavailable(cls) -> str | None:
        return None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def aux_pids(self) -> list[int]:
        return []

    async def start(self) -> None:
        log_path = self.workdir / f"{self.name}.log"
        with log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), stdout=asyncio.subprocess.PIPE, stderr=log, cwd=REPO
            )
        assert self.proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = await self.proc.stdout.readline()
        if not line.startswith(b"listening on "):
            await self.stop()
            raise RuntimeError(f"{self.name} did not start; see {log_path}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


class BareServer(BaselineServer):
    name = "bare_server"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.bare_server", "--port", str(self.port)]


class NodeServer(BaselineServer):
    """A baseline in ``bench/node/servers/``, on packages the generator's ``npm ci`` installs."""

    package: ClassVar[str]
    """The npm package it is built on (for the availability check)."""

    def command(self) -> list[str]:
        return ["node", str(NODE_DIR / "servers" / f"{self.name}.js"), "--port", str(self.port)]

    @classmethod
    def unavailable(cls) -> str | None:
        if shutil.which("node") is None:
            return "node is not installed"
        if not (NODE_DIR / "node_modules" / cls.package / "package.json").exists():
            return f"the npm package {cls.package} is not installed in bench/node (npm ci there)"
        return None


class NodeWsServer(NodeServer):
    name = "ws_rooms"
    package = "ws"


class SocketIOServer(NodeServer):
    name = "socketio_rooms"
    package = "socket.io"
    path = "/socket.io/?EIO=4&transport=websocket"


BASELINE_SERVERS: dict[str, type[BaselineServer]] = {
    "bare": BareServer,
    "node-ws": NodeWsServer,
    "socketio": SocketIOServer,
}
"""Target key -> the baseline server it starts."""


class ProfiledGateway(GatewayProcess):
    """``wirehub serve`` under cProfile; the profile is written when the process exits on SIGTERM."""

    def __init__(self, workdir: Path, profile_path: Path, *, config: str, env: dict[str, str]) -> None:
        super().__init__(workdir, config=config, env=env)
        self.profile_path = profile_path

    def command(self) -> list[str]:
        python, *serve = super().command()
        return [python, "-m", "cProfile", "-o", str(self.profile_path), *serve]


class WirehubServer:
    def __init__(
        self, workdir: Path, ports: PortAllocator, store: Store, profile_path: Path | None = None
    ) -> None:
        env = {"WIREHUB_SERVER_PORT": str(ports.take()), "WIREHUB_HTTP_PORT": str(ports.take())}
        self.mongo: MongoStandIn | None = None
        if store is Store.MONGO:
            self.mongo = MongoStandIn(workdir / "mongo", ports.take())
            env["WIREHUB_STORE_URL"] = f"{self.mongo.url}/wirehub_bench"
        self.gateway = (
            GatewayProcess(workdir, config=WIREHUB_CONFIG, env=env)
            if profile_path is None
            else ProfiledGateway(workdir, profile_path, config=WIREHUB_CONFIG, env=env)
        )
        self.workdir = workdir

    @property
    def url(self) -> str:
        return self.gateway.ws_url

    @property
    def pid(self) -> int:
        assert self.gateway.proc is not None
        return self.gateway.proc.pid

    @property
    def aux_pids(self) -> list[int]:
        if self.mongo is None or self.mongo.proc is None:
            return []
        return [self.mongo.proc.pid]

    async def start(self) -> None:
        if self.mongo is not None:
            await self.mongo.start()
        await self.gateway.start()

    async def stop(self) -> None:
        if isinstance(self.gateway, ProfiledGateway):
            await self.gateway.stop()  # SIGTERM: a clean exit writes the profile
        else:
            await self.gateway.kill()
        if self.mongo is not None:
            await self.mongo.stop()

    @staticmethod
    def token() -> str:
        return GatewayProcess.token("bench", ttl_s=24 * 3600)
