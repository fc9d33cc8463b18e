"""Real backing services for tests: ``redis-server`` and the ``nx-27017`` MongoDB stand-in.

Each server is started by the tests on a free loopback port and can be stopped and started
again on the same port (outage tests). ``WIREHUB_TEST_REDIS_URL`` / ``WIREHUB_TEST_MONGODB_URL``
point the same tests at servers someone else runs; tests then isolate themselves by key prefix
and database name, and never flush or drop what they did not create.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
from pathlib import Path

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the port accepts connections, failing early if the process died."""
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            if proc.poll() is not None:
                output = log.read_text(errors="replace")  # noqa: ASYNC240 - failing anyway
                raise RuntimeError(f"server exited with {proc.returncode}:\n{output}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # polling a port that is not open yet, under the deadline
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


class ServerProcess:
    """A server process on a fixed loopback port that can be stopped and started again."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A plain Popen, not an asyncio subprocess: the server outlives the loop that started
            # it (session fixtures, tests that stop and restart it from their own loop).
            self.proc = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed commands of test servers
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        await wait_for_port(self.port, self.proc, self.log_path)

    async def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


class RedisServer(ServerProcess):
    @staticmethod
    def binary() -> str:
        path = shutil.which("redis-server")
        if path is None:
            raise RuntimeError("redis-server is not installed: scripts/test installs Debian's redis-server")
        return path

    def command(self) -> list[str]:
        return [
            self.binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


async def redis_cli(port: int, *args: str, host: str = "127.0.0.1") -> str:
    """Run one ``redis-cli`` command against ``host``:``port``; its output, or RuntimeError."""
    path = shutil.which("redis-cli")
    if path is None:
        raise RuntimeError("redis-cli is not installed: scripts/test installs Debian's redis-server")
    proc = await asyncio.create_subprocess_exec(
        path, "-h", host, "-p", str(port), *args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(START_TIMEOUT_S):
        output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    if proc.returncode != 0 or text.startswith("ERR") or "(error)" in text:
        raise RuntimeError(f"redis-cli {' '.join(args)}: exit {proc.returncode}: {text}")
    return text


class RedisClusterNode(RedisServer):
    """One master of a test cluster; its cluster bus gets a free port of its own."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.bus_port = free_port()

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.workdir / "nodes.conf"),
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip


class RedisClusterServers:
    """A Redis Cluster of ``masters`` masters (no replicas) on loopback ports, made with redis-cli."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes = [RedisClusterNode(workdir / f"node{i}") for i in range(masters)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    async def start(self) -> None:
        for node in self.nodes:
            await node.start()
        await redis_cli(
            self.nodes[0].port,
            "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.nodes), "--cluster-yes",
        )  # fmt: skip
        # redis-cli returns once the slots are assigned; every node must also know the others.
        async with asyncio.timeout(START_TIMEOUT_S):
            for node in self.nodes:
                while True:
                    info = await redis_cli(node.port, "cluster", "info")
                    if "cluster_state:ok" in info and f"cluster_known_nodes:{len(self.nodes)}" in info:
                        break
                    await asyncio.sleep(0.05)  # gossip has no event to wait on: poll under the deadline

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()

    async def node_ids(self) -> dict[int, str]:
        """Port -> cluster node id, as the first node sees the cluster."""
        ids: dict[int, str] = {}
        for line in (await redis_cli(self.nodes[0].port, "cluster", "nodes")).splitlines():
            node_id, address = line.split()[:2]
            ids[int(address.split("@")[0].rsplit(":", 1)[1])] = node_id
        return ids


class MongoStandIn(ServerProcess):
    """``nx-27017``: the MongoDB wire protocol over SQLite, one database file per logical db."""

    def command(self) -> list[str]:
        exe = Path(sys.executable).with_name("nx-27017")
        return [
            str(exe),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(self.workdir / "data"),
            "--log-file", str(self.workdir / "nx.log"),
            "--pid-file", str(self.workdir / "nx.pid"),
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"
