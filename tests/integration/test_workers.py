"""``wirehub serve --workers N``: N processes on one port, meeting on Redis like any replicas."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.cli_helpers import run_cli
from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import eventually
from tests.raw_client import RawClient

API_KEY = "workers-test-api-key"
WAIT_S = 15.0
CLIENTS = 16
"""Connections spread by the kernel's hash over two workers: all on one has odds of 2 in 65536."""


async def info(gateway: GatewayProcess) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.http_url}/api/info", json={}, headers={"X-API-Key": API_KEY}) as response,
    ):
        nodes: list[dict[str, Any]] = (await response.json())["result"]["nodes"]
        return nodes


async def nodes_with(gateway: GatewayProcess, pids: set[int]) -> list[dict[str, Any]]:
    """``info`` once it lists exactly the processes ``pids``: replicas meet by heartbeat."""

    async def nodes() -> list[dict[str, Any]] | None:
        listed = await info(gateway)
        return listed if {node["process"]["pid"] for node in listed} == pids else None

    return await eventually(nodes, timeout_s=WAIT_S, interval_s=0.1)


def worker_pids(gateway: GatewayProcess) -> set[int]:
    match = re.search(r"\(2 workers: pids (\d+), (\d+)\)", gateway.listening_line)
    assert match, gateway.listening_line
    return {int(pid) for pid in match.groups()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_workers_share_the_port_and_deliver_to_each_other(
    start_gateway: StartGateway, redis_url: str, unique_name: str
) -> None:
    env = {
        "WIREHUB_BROKER_URL": redis_url,
        "WIREHUB_BROKER_KEY_PREFIX": unique_name,
        "WIREHUB_API_KEY": API_KEY,
    }
    gateway = await start_gateway(env=env, args=["--workers", "2"])
    pids = worker_pids(gateway)
    await nodes_with(gateway, pids)

    clients = [await RawClient.open(gateway.ws_url) for _ in range(CLIENTS)]
    try:
        for n, client in enumerate(clients):
            await client.connect(gateway.token(f"user{n}"))
            assert "subscribe" in await client.call("subscribe", {"channel": "chat:workers"})
        nodes = await info(gateway)
        assert sorted(node["num_clients"] for node in nodes)[0] > 0, nodes  # both workers serve
        assert sum(node["num_clients"] for node in nodes) == CLIENTS

        for n in range(20):
            reply = await clients[0].call("publish", {"channel": "chat:workers", "data": {"n": n}})
            assert "publish" in reply, reply
        for client in clients:
            received: list[int] = []
            while len(received) < 20:
                push = await client.push()
                if "pub" in push:
                    received.append(push["pub"]["data"]["n"])
            assert received == list(range(20))
    finally:
        for client in clients:
            await client.close()

    # A worker that dies is started again; the supervisor stays up.
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)

    async def newcomers() -> list[dict[str, Any]]:
        try:
            return [n for n in await info(gateway) if n["process"]["pid"] not in pids]
        except aiohttp.ClientOSError:
            # A request the kernel had queued on the dying worker's socket is reset: clients
            # retry, as the SDKs do.
            return []

    nodes = await eventually(newcomers, timeout_s=WAIT_S, interval_s=0.1)
    replacement = nodes[0]["process"]["pid"]
    assert "worker exited" in gateway.log()

    assert await gateway.stop() == 0
    assert not any(alive(pid) for pid in (pids - {victim}) | {replacement})


def test_workers_refuse_the_in_process_broker(tmp_path: Path) -> None:
    """Workers on the in-process broker would be islands: refused, naming the setting."""
    result = run_cli(
        "serve",
        "--workers",
        "2",
        cwd=tmp_path,
        env={
            "WIREHUB_AUTH_TOKEN_HMAC_SECRET": "w" * 32,
            "WIREHUB_SERVER_PORT": "0",
            "WIREHUB_HTTP_PORT": "0",
        },
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: --workers 2: the workers must share a broker")
    )
    assert "broker.url" in result.stderr
