"""The Redis broker and presence against real ``redis-server`` processes: what the contract suite
cannot show with one node, such as several nodes, deployments sharing a Redis, TLS and unix-socket
URLs, outages, health checks and a Redis Cluster's shards.

Outage tests start a Redis of their own (``own_redis``) and stop, freeze or restart it; the rest
use the session's servers under a unique key prefix. Every wait is on an event (a listener
callback, a log record) under ``asyncio.timeout``; only key expiry, which has no event, is
polled under a deadline.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.redis_helpers import RecordingListener, owner_of, slot_owners
from tests.services import RedisClusterServers, RedisServer, free_port, redis_cli
from wirehub.broker.redis import KeySpace, RedisBroker, RedisClient, RedisPresence, channel_slot
from wirehub.errors import BrokerUnavailable
from wirehub.types import ClientInfo, DisconnectUser, Publication, UnsubscribeUser

WAIT_S = 20.0
"""Generous: a reconnect waits out a backoff, and the machine is shared."""

ALICE = ClientInfo(user="alice", client="c-alice")

OpenBroker = Callable[..., Awaitable[tuple[RedisBroker, RecordingListener]]]


@pytest.fixture
async def open_broker(unique_name: str) -> AsyncIterator[OpenBroker]:
    """Start Redis brokers (a node each, with a listener); all are closed at teardown."""
    brokers: list[RedisBroker] = []

    async def open_(
        url: str,
        *,
        cluster: bool = False,
        prefix: str | None = None,
        max_connections: int = 8,
        health_interval_s: float = 5.0,
    ) -> tuple[RedisBroker, RecordingListener]:
        client = RedisClient(url, cluster=cluster, max_connections=max_connections)
        broker = RedisBroker(client, key_prefix=prefix or unique_name, health_interval_s=health_interval_s)
        listener = RecordingListener()
        brokers.append(broker)
        await broker.start(listener)
        return broker, listener

    yield open_
    for broker in brokers:
        await broker.close()


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def shared_url(redis_kind: str, request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("redis_cluster_url" if redis_kind == "redis-cluster" else "redis_url")
    return url


class LogWatcher(logging.Handler):
    """Lets a test wait for a log record of ``wirehub.broker.redis``: the broker's own events."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self._changed.set()

    async def wait_for(self, message: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while message not in self.messages:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def broker_log() -> Iterator[LogWatcher]:
    watcher = LogWatcher()
    logger = logging.getLogger("wirehub.broker.redis")
    logger.addHandler(watcher)
    try:
        yield watcher
    finally:
        logger.removeHandler(watcher)


async def wait_for_gap(listener: RecordingListener, channels: set[str]) -> None:
    """Wait until the listener has been told of a gap covering ``channels``."""
    await listener.wait_until(lambda: channels <= set().union(*listener.gaps))


async def wait_for_controls(listener: RecordingListener) -> None:
    """Wait until the listener has received a control message."""
    await listener.wait_until(lambda: bool(listener.controls))


# --------------------------------------------------------------------------- several nodes


async def test_redis_broker_delivers_to_every_node_in_publish_order_when_sharing_redis(
    open_broker: OpenBroker, shared_url: str, redis_kind: str
) -> None:
    """Two nodes on one Redis (or cluster) both get one node's publications, in its publish order."""
    cluster = redis_kind == "redis-cluster"
    a, a_heard = await open_broker(shared_url, cluster=cluster)
    b, b_heard = await open_broker(shared_url, cluster=cluster)
    await a.subscribe("chat:room")
    await b.subscribe("chat:room")
    pubs = [Publication(data={"n": n}, offset=n, info=ALICE) for n in range(1, 101)]
    for pub in pubs:
        await a.publish("chat:room", pub)
    assert await b_heard.wait_for("chat:room", 100) == pubs
    assert await a_heard.wait_for("chat:room", 100) == pubs


async def test_redis_broker_delivers_control_message_to_every_node(
    open_broker: OpenBroker, shared_url: str, redis_kind: str
) -> None:
    """A node's control messages reach every node of the deployment, the sender included."""
    cluster = redis_kind == "redis-cluster"
    a, a_heard = await open_broker(shared_url, cluster=cluster)
    _, b_heard = await open_broker(shared_url, cluster=cluster)
    _, c_heard = await open_broker(shared_url, cluster=cluster)
    message = UnsubscribeUser(user="bob", channel="chat:room", origin="a")
    await a.publish_control(message)
    for heard in (a_heard, b_heard, c_heard):
        await wait_for_controls(heard)
        assert heard.controls == [message]


async def test_redis_broker_keeps_deployments_apart_when_prefixes_differ(
    open_broker: OpenBroker, redis_url: str, unique_name: str
) -> None:
    """Nodes under another key_prefix on the same Redis see none of this deployment's messages."""
    mine, _ = await open_broker(redis_url, prefix=f"{unique_name}-mine")
    theirs, theirs_heard = await open_broker(redis_url, prefix=f"{unique_name}-theirs")
    await mine.subscribe("chat:room")
    await theirs.subscribe("chat:room")
    await mine.publish("chat:room", Publication(data="mine"))
    await mine.publish_control(DisconnectUser(user="alice", code=3503, reason="bye", origin="mine"))
    # One Redis runs commands one by one: their own marker, published after, arrives after.
    await theirs.publish("chat:room", Publication(data="theirs"))
    await theirs.publish_control(UnsubscribeUser(user="bob", channel="x", origin="theirs"))
    await wait_for_controls(theirs_heard)
    assert theirs_heard.received("chat:room") == [Publication(data="theirs")]
    assert theirs_heard.controls == [UnsubscribeUser(user="bob", channel="x", origin="theirs")]


async def test_redis_broker_waits_for_free_connection_when_pool_is_exhausted(
    open_broker: OpenBroker, shared_url: str, redis_kind: str
) -> None:
    """With max_connections=1, fifty concurrent publishes queue for the connection; none fails."""
    cluster = redis_kind == "redis-cluster"
    a, _ = await open_broker(shared_url, cluster=cluster, max_connections=1)
    b, b_heard = await open_broker(shared_url, cluster=cluster)
    await b.subscribe("chat:busy")
    await asyncio.gather(*(a.publish("chat:busy", Publication(data=n)) for n in range(50)))
    received = [m.data for m in await b_heard.wait_for("chat:busy", 50) if isinstance(m, Publication)]
    assert sorted(n for n in received if isinstance(n, int)) == list(range(50))


async def test_redis_broker_start_raises_broker_unavailable_when_redis_unreachable(unique_name: str) -> None:
    """A node cannot start on a Redis that does not answer; it says so with BrokerUnavailable."""
    broker = RedisBroker(RedisClient(f"redis://127.0.0.1:{free_port()}/0"), key_prefix=unique_name)
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.start(RecordingListener())
    finally:
        await broker.close()


class ListeningRedis(RedisServer):
    """A redis-server that also listens on a unix socket and, with TLS, on a port of its own."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.socket = workdir / "redis.sock"
        self.tls_port = free_port()
        self.ca = workdir / "ca.pem"

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(self.workdir / "server.pem"),
            "--tls-key-file", str(self.workdir / "server.key"),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_tls_files(self.workdir)
        await super().start()


def write_tls_files(directory: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if subject == "test ca":
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        else:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca_cert = certificate("test ca", ca_key, ca_name, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("127.0.0.1", server_key, ca_name, ca_key)
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@pytest.mark.parametrize("scheme", ["rediss", "unix"])
async def test_redis_broker_delivers_between_nodes_when_url_is_tls_or_unix_socket(
    open_broker: OpenBroker, tmp_path: Path, unique_name: str, scheme: str
) -> None:
    """rediss:// (certificate checked against the URL's CA) and unix:// carry messages and presence."""
    server = ListeningRedis(tmp_path / "redis")
    await server.start()
    try:
        if scheme == "rediss":
            url = f"rediss://127.0.0.1:{server.tls_port}/0?ssl_ca_certs={server.ca}&ssl_cert_reqs=required"
        else:
            url = f"unix://{server.socket}?db=0"
        a, a_heard = await open_broker(url)
        b, _ = await open_broker(url)
        await a.subscribe("chat:secure")
        await b.publish("chat:secure", Publication(data=scheme))
        assert await a_heard.wait_for("chat:secure", 1) == [Publication(data=scheme)]
        presence = RedisPresence(RedisClient(url), key_prefix=unique_name, owns_client=True)
        try:
            await presence.add("chat:secure", ALICE, ttl_s=60)
            assert await presence.members("chat:secure") == {ALICE.client: ALICE}
        finally:
            await presence.close()
    finally:
        await server.stop()


# --------------------------------------------------------------------------- outages


async def test_redis_broker_reports_gap_and_resubscribes_when_redis_restarts(
    open_broker: OpenBroker, own_redis: RedisServer
) -> None:
    """After a restart every channel is subscribed again, reported as a gap, and delivered again."""
    a, a_heard = await open_broker(own_redis.url)
    b, b_heard = await open_broker(own_redis.url)
    for channel in ("chat:one", "chat:two"):
        await a.subscribe(channel)
    await b.subscribe("chat:one")
    await own_redis.stop()
    with pytest.raises(BrokerUnavailable):
        await b.publish("chat:one", Publication(data="lost"))
    with pytest.raises(BrokerUnavailable):
        await b.publish_control(UnsubscribeUser(user="bob", channel="x"))
    await own_redis.start()
    await wait_for_gap(a_heard, {"chat:one", "chat:two"})
    await wait_for_gap(b_heard, {"chat:one"})
    await b.publish("chat:one", Publication(data="after"))
    await b.publish("chat:two", Publication(data="after"))
    assert await a_heard.wait_for("chat:one", 1) == [Publication(data="after")]
    assert await a_heard.wait_for("chat:two", 1) == [Publication(data="after")]
    await b.publish_control(UnsubscribeUser(user="bob", channel="x"))
    await wait_for_controls(a_heard)


async def test_redis_broker_subscribes_on_reconnect_when_subscribed_while_redis_down(
    open_broker: OpenBroker, own_redis: RedisServer
) -> None:
    """A subscribe during an outage returns, and takes effect (with a gap) once Redis is back."""
    a, a_heard = await open_broker(own_redis.url)
    await own_redis.stop()
    async with asyncio.timeout(WAIT_S):
        await a.subscribe("chat:later")
    await own_redis.start()
    await wait_for_gap(a_heard, {"chat:later"})
    b, _ = await open_broker(own_redis.url)
    await b.publish("chat:later", Publication(data=1))
    assert await a_heard.wait_for("chat:later", 1) == [Publication(data=1)]


async def test_redis_broker_reconnects_when_redis_stops_answering(
    open_broker: OpenBroker, own_redis: RedisServer, broker_log: LogWatcher
) -> None:
    """A frozen Redis (connection open, no replies) fails the health check; the link comes back after."""
    a, a_heard = await open_broker(own_redis.url, health_interval_s=0.2)
    await a.subscribe("chat:frozen")
    assert own_redis.proc is not None
    pid = own_redis.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await broker_log.wait_for("broker link lost, reconnecting")
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_for_gap(a_heard, {"chat:frozen"})
    b, _ = await open_broker(own_redis.url)
    await b.publish("chat:frozen", Publication(data="thawed"))
    assert await a_heard.wait_for("chat:frozen", 1) == [Publication(data="thawed")]


async def test_redis_presence_raises_broker_unavailable_when_redis_down(
    own_redis: RedisServer, unique_name: str
) -> None:
    """Every presence call fails with BrokerUnavailable during an outage and works again after it."""
    presence = RedisPresence(RedisClient(own_redis.url), key_prefix=unique_name, owns_client=True)
    try:
        await presence.add("chat:room", ALICE, ttl_s=60)
        await own_redis.stop()
        for call in (
            presence.add("chat:room", ALICE, ttl_s=60),
            presence.remove("chat:room", ALICE.client),
            presence.members("chat:room"),
            presence.stats("chat:room"),
        ):
            with pytest.raises(BrokerUnavailable):
                await call
        await own_redis.start()
        await presence.add("chat:room", ALICE, ttl_s=60)  # the restart (no persistence) lost it
        assert await presence.members("chat:room") == {ALICE.client: ALICE}
    finally:
        await presence.close()


async def test_redis_presence_leaves_no_keys_when_entries_not_refreshed(
    redis_url: str, unique_name: str
) -> None:
    """Presence keys carry the expiry of their longest-lived entry: a crashed node leaves nothing."""
    presence = RedisPresence(RedisClient(redis_url), key_prefix=unique_name, owns_client=True)
    address = urlsplit(redis_url)
    assert address.port is not None
    host, port = address.hostname or "127.0.0.1", address.port
    keys = KeySpace(unique_name).presence("chat:ghosts")
    try:
        await presence.add("chat:ghosts", ALICE, ttl_s=0.5)
        assert (await redis_cli(port, "exists", *keys, host=host)).strip() == "4"
        async with asyncio.timeout(WAIT_S):
            while (await redis_cli(port, "exists", *keys, host=host)).strip() != "0":  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # key expiry has no event to wait on: poll under the deadline
        assert await presence.members("chat:ghosts") == {}
    finally:
        await presence.close()


# --------------------------------------------------------------------------- Redis Cluster


async def test_redis_broker_subscribes_each_channel_on_its_shard_when_cluster(
    open_broker: OpenBroker, redis_cluster: RedisClusterServers | None, unique_name: str
) -> None:
    """Each channel is SSUBSCRIBEd on the master owning its slot; publications cross over from all shards."""
    if redis_cluster is None:
        pytest.fail("this test inspects the masters: run it on the cluster the tests start")
    owners = await slot_owners(redis_cluster.nodes[0].port)
    assert len(owners) == 3
    by_master: dict[int, str] = {}
    for i in range(1000):
        channel = f"chat:shard-{i}"
        by_master.setdefault(owner_of(channel, owners), channel)
        if len(by_master) == len(owners):
            break
    a, a_heard = await open_broker(redis_cluster.url, cluster=True)
    b, _ = await open_broker(redis_cluster.url, cluster=True)
    for channel in by_master.values():
        await a.subscribe(channel)
    keys = KeySpace(unique_name)
    for port, channel in by_master.items():
        listed = (await redis_cli(port, "pubsub", "shardchannels", f"{unique_name}:pub:*")).split()
        assert listed == [keys.channel(channel)], port
    for channel in by_master.values():
        await b.publish(channel, Publication(data=channel))
    for channel in by_master.values():
        assert await a_heard.wait_for(channel, 1) == [Publication(data=channel)]


async def test_redis_broker_follows_channel_to_new_shard_when_slot_moves(
    open_broker: OpenBroker, tmp_path: Path, unique_name: str
) -> None:
    """When a slot moves, subscribed and newly subscribed channels move with it, each reported as a gap."""
    cluster = RedisClusterServers(tmp_path / "cluster")
    await cluster.start()
    try:
        a, a_heard = await open_broker(cluster.url, cluster=True)
        c, c_heard = await open_broker(cluster.url, cluster=True)  # its slot map goes stale
        b, _ = await open_broker(cluster.url, cluster=True)
        moving = "chat:moving"
        await a.subscribe(moving)
        slot = channel_slot(moving)
        # Another channel of the same slot, which c subscribes only after the move.
        later = next(f"chat:later-{i}" for i in range(100_000) if channel_slot(f"chat:later-{i}") == slot)
        owners = await slot_owners(cluster.nodes[0].port)
        old = owner_of(moving, owners)
        new = next(port for port in owners if port != old)
        new_id = (await cluster.node_ids())[new]
        assert a_heard.gaps == []
        for node in cluster.nodes:  # the slot holds no key: moving its ownership is enough
            await redis_cli(node.port, "cluster", "setslot", str(slot), "node", new_id)

        # a: Redis unsubscribes the shard channel; the broker finds the new owner.
        await wait_for_gap(a_heard, {moving})
        # c: its SSUBSCRIBE goes to the old owner, which answers MOVED.
        assert c_heard.gaps == []
        await c.subscribe(later)
        await wait_for_gap(c_heard, {later})
        for port, channel in ((new, moving), (new, later)):
            listed = (await redis_cli(port, "pubsub", "shardchannels", f"{unique_name}:pub:*")).split()
            assert KeySpace(unique_name).channel(channel) in listed
        await b.publish(moving, Publication(data="moved"))
        await b.publish(later, Publication(data="later"))
        assert await a_heard.wait_for(moving, 1) == [Publication(data="moved")]
        assert await c_heard.wait_for(later, 1) == [Publication(data="later")]
    finally:
        await cluster.stop()
