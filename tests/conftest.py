"""Shared fixtures: real gateway processes on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest

from tests.gateway_process import GatewayProcess

StartGateway = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Start ``wirehub serve`` processes (config TOML, env, --app); all are killed at teardown."""
    started: list[GatewayProcess] = []

    async def start(
        config: str | None = None, env: Mapping[str, str] | None = None, app: str | None = None
    ) -> GatewayProcess:
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        gw = GatewayProcess(workdir, config=config, env=env, app=app)
        started.append(gw)
        await gw.start()
        return gw

    yield start
    for gw in started:
        await gw.kill()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> GatewayProcess:
    """A gateway on the out-of-the-box configuration (the ``chat`` namespace)."""
    return await start_gateway()
