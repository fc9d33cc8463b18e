"""Shared fixtures: real gateway processes on free loopback ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.gateway_process import GatewayProcess, warm_pythons
from tests.helpers import Gateways
from tests.mongo_helpers import database_url, drop_database
from tests.services import MongoStandIn, RedisClusterServers, RedisServer

StartGateway = Callable[..., Awaitable[GatewayProcess]]


_TESTS = Path(__file__).parent
_SLOW_DIRS = (_TESTS / "integration", _TESTS / "e2e")
"""Whole directories of slow tests: the integration tests start gateway processes, servers and
Redis clusters, and run the real SDKs; the end-to-end tests drive Chromium."""


def _is_slow(item: pytest.Item) -> bool:
    path = Path(item.path)
    # Property-based fuzzing runs hundreds of examples per test, wherever it lives.
    return any(path.is_relative_to(d) for d in _SLOW_DIRS) or path.name.startswith("test_fuzz_")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tests ``slow`` (``-m "not slow"`` runs the rest in well under a minute).

    Tests marked ``real_mongodb`` are skipped unless WIREHUB_TEST_MONGODB_URL names a MongoDB.
    """
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)
    if os.environ.get("WIREHUB_TEST_MONGODB_URL"):
        return
    skip = pytest.mark.skip(reason="needs a real MongoDB (WIREHUB_TEST_MONGODB_URL); the stand-in lacks it")
    for item in items:
        if item.get_closest_marker("real_mongodb") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _warm_pythons() -> Iterator[None]:
    """Gateways of this run start from warm processes (``tests.gateway_process.WarmPythons``);
    the spares left are ended when the run ends."""
    warm_pythons.enabled = True
    yield
    warm_pythons.close()


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Start ``wirehub serve`` processes (config TOML, env, --app, more arguments) for one test;
    all are ended at teardown (see ``Gateways.close``)."""
    gateways = Gateways(tmp_path)
    yield gateways.start
    await gateways.close()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> GatewayProcess:
    """A gateway on the out-of-the-box configuration (the ``chat`` namespace), for one test."""
    return await start_gateway()


@pytest.fixture(scope="module")
async def start_module_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StartGateway]:
    """Start gateway processes that every test of a module shares; ended when the module is done.

    For tests that neither restart a gateway nor change its configuration: they stay independent
    by using channel and user names no other test uses (``tests.helpers.unique``)."""
    gateways = Gateways(tmp_path_factory.mktemp("module-gateways"))
    yield gateways.start
    await gateways.close()


@pytest.fixture(scope="module")
async def module_gateway(start_module_gateway: StartGateway) -> GatewayProcess:
    """A gateway on the out-of-the-box configuration, shared by the module's tests."""
    return await start_module_gateway()


# --------------------------------------------------------------------------- backing services


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisServer | None]:
    """A real redis-server for the session, or None when WIREHUB_TEST_REDIS_URL names one."""
    if os.environ.get("WIREHUB_TEST_REDIS_URL"):
        yield None
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    return os.environ.get("WIREHUB_TEST_REDIS_URL") or (redis_server.url if redis_server else "")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server for this test alone, which it may stop, freeze (SIGSTOP) and start again."""
    server = RedisServer(tmp_path / "own-redis")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RedisClusterServers | None]:
    """A real 3-master Redis Cluster for the session, or None if WIREHUB_TEST_REDIS_CLUSTER_URL names one."""
    if os.environ.get("WIREHUB_TEST_REDIS_CLUSTER_URL"):
        yield None
        return
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisClusterServers | None) -> str:
    return os.environ.get("WIREHUB_TEST_REDIS_CLUSTER_URL") or (redis_cluster.url if redis_cluster else "")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MongoStandIn | None]:
    """The nx-27017 stand-in for the session, or None when WIREHUB_TEST_MONGODB_URL names a MongoDB."""
    if os.environ.get("WIREHUB_TEST_MONGODB_URL"):
        yield None
        return
    server = MongoStandIn(tmp_path_factory.mktemp("mongo"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def mongodb_url(mongo_server: MongoStandIn | None) -> str:
    return os.environ.get("WIREHUB_TEST_MONGODB_URL") or (mongo_server.url if mongo_server else "")


@pytest.fixture
async def mongo_db(mongodb_url: str, unique_name: str) -> AsyncIterator[str]:
    """The test's own database on the session's MongoDB, dropped afterwards."""
    url = database_url(mongodb_url, unique_name)
    yield url
    await drop_database(url)


@pytest.fixture
async def private_mongo(tmp_path: Path) -> AsyncIterator[MongoStandIn]:
    """An nx-27017 of this test's own, which the test may stop and start again on the same port."""
    server = MongoStandIn(tmp_path / "private-mongo")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses: key prefixes and database names isolate tests on shared servers."""
    return f"t{uuid.uuid4().hex[:12]}"
