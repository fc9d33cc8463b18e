"""``deploy/haproxy.cfg`` in front of two real gateways: a replica whose Redis is down leaves the
rotation, and comes back once it is ready again.

The configuration is the repository's own, with the compose service names swapped for the
gateways' loopback ports, Docker's DNS resolver left out, and its checks every 0.5 s instead of
every 2 s (still two in a row to change HAProxy's mind), so the test waits a quarter as long.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import eventually
from tests.metrics_helpers import scrape, value
from tests.raw_client import RawClient
from tests.services import RedisServer, ServerProcess, free_port

CONFIG = Path(__file__).parent.parent.parent / "deploy" / "haproxy.cfg"
WAIT_S = 20.0
"""Deadline for HAProxy changing its mind: two checks in a row, 0.5 s apart here."""
CHECK_INTERVAL = ("inter 2s", "inter 500ms")
"""The check interval of ``deploy/haproxy.cfg``, and the shorter one the test runs it with."""


class HAProxy(ServerProcess):
    def __init__(self, workdir: Path, gateways: dict[str, GatewayProcess]) -> None:
        super().__init__(workdir)
        self.ports = {"8000": self.port, "8001": free_port(), "8002": free_port()}
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(self._localized(gateways), encoding="utf-8")

    def _localized(self, gateways: dict[str, GatewayProcess]) -> str:
        text = CONFIG.read_text(encoding="utf-8")
        text = re.sub(r"^resolvers docker\n(?:[ \t]+.*\n|\n)*?(?=^\S)", "", text, flags=re.MULTILINE)
        text = text.replace(" resolvers docker init-addr last,libc,none", "")
        assert CHECK_INTERVAL[0] in text, "deploy/haproxy.cfg changed its check interval: update the test"
        text = text.replace(*CHECK_INTERVAL)
        text = re.sub(r"bind :(\d+)", lambda m: f"bind 127.0.0.1:{self.ports[m.group(1)]}", text)

        def server(match: re.Match[str]) -> str:
            name, port, check_port = match.group(1), match.group(2), match.group(3)
            gateway = gateways[name]
            ws, http = (
                int(url.rsplit(":", 1)[1].split("/")[0]) for url in (gateway.ws_url, gateway.http_url)
            )
            local = {"8000": ws, "8001": http, "8002": http}
            line = f"server {name} 127.0.0.1:{local[port]} check"
            return line + (f" port {local[check_port]}" if check_port else "")

        return re.sub(r"server (\S+) \S+:(\d+) check(?: port (\d+))?", server, text)

    def command(self) -> list[str]:
        haproxy = shutil.which("haproxy")
        assert haproxy is not None, "scripts/test installs Debian's haproxy"
        return [haproxy, "-db", "-f", str(self.config)]


async def connections(gateway: GatewayProcess) -> float:
    return value(await scrape(gateway), "wirehub_connections")


async def open_through(gateways: dict[str, GatewayProcess], lb_url: str, token: str) -> tuple[RawClient, str]:
    """Connect through the load balancer; the client and the gateway that took it (the one
    whose count went up: nothing else is open during these tests)."""
    before = {name: await connections(gw) for name, gw in gateways.items()}
    client = await RawClient.open(lb_url)
    assert "connect" in await client.connect(token)
    for name, gw in gateways.items():
        if await connections(gw) > before[name]:
            return client, name
    raise AssertionError("no gateway counted the connection")


async def close_all(gateways: dict[str, GatewayProcess], clients: list[RawClient]) -> None:
    """Close ``clients`` and wait until the gateways have counted them out (closes are seen a
    moment after the client sends them)."""
    for client in clients:
        await client.close()
    clients.clear()

    async def none_open() -> bool:
        return sum([await connections(gw) for gw in gateways.values()]) == 0

    await eventually(none_open, timeout_s=WAIT_S)


async def wait_until_only(
    gateways: dict[str, GatewayProcess], lb_url: str, token: str, name: str
) -> list[RawClient]:
    """Wait until new connections go to ``name`` alone: with ``leastconn``, a second gateway in
    rotation would get the next connection, so eight in a row on one mean the other is out."""
    held: list[RawClient] = []

    async def eight_in_a_row() -> bool:
        while len(held) < 8:
            client, landed = await open_through(gateways, lb_url, token)
            held.append(client)
            if landed != name:  # HAProxy has not checked again yet
                await close_all(gateways, held)
                return False
        return True

    await eventually(eight_in_a_row, timeout_s=WAIT_S, interval_s=0.2)
    return held


async def wait_until_one_lands_on(
    gateways: dict[str, GatewayProcess], lb_url: str, token: str, name: str
) -> None:
    async def lands_there() -> bool:
        client, landed = await open_through(gateways, lb_url, token)
        await close_all(gateways, [client])
        return landed == name

    await eventually(lands_there, timeout_s=WAIT_S, interval_s=0.2)


async def test_a_replica_whose_redis_is_down_leaves_the_rotation(
    start_gateway: StartGateway, own_redis: RedisServer, tmp_path: Path
) -> None:
    other_redis = RedisServer(tmp_path / "other-redis")
    await other_redis.start()
    lb: HAProxy | None = None
    try:
        gateways = {
            "gateway1": await start_gateway(env={"WIREHUB_BROKER_URL": own_redis.url}),
            "gateway2": await start_gateway(env={"WIREHUB_BROKER_URL": other_redis.url}),
        }
        lb = HAProxy(tmp_path / "haproxy", gateways)
        await lb.start()
        lb_url = f"ws://127.0.0.1:{lb.port}/connection/websocket"
        token = GatewayProcess.token("alice")

        await wait_until_one_lands_on(gateways, lb_url, token, "gateway1")  # both in rotation
        await own_redis.stop()
        await close_all(gateways, await wait_until_only(gateways, lb_url, token, "gateway2"))
        await own_redis.start()
        await wait_until_one_lands_on(gateways, lb_url, token, "gateway1")
    finally:
        if lb is not None:
            await lb.stop()
        await other_redis.stop()
