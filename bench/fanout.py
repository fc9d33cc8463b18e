"""Fan-out benchmark of one gateway node: N subscribers on one channel, one publisher, M messages.

Run from the repository root::

    python -m bench.fanout [--subscribers 500] [--messages 200] [--rate 200]
                           [--payload-bytes 200] [--out bench/results/fanout.json]

Every scenario starts a fresh ``wirehub serve`` process (log, config and database in a temp
dir), opens N raw WebSocket subscribers that connect with a token and subscribe to one channel,
then a publisher connection (on its own thread) publishes M messages at ``--rate`` per second.
Each payload carries ``time.perf_counter_ns()`` at send; publisher and subscribers live in this
one process, so the latency of a delivery is simply "receive time minus send time". See
bench/README.md for what each figure means and how to compare runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.gateway_process import GatewayProcess
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

T = TypeVar("T")

CLK_TCK = os.sysconf("SC_CLK_TCK")
OPEN_CONCURRENCY = 50
"""Connections opened at once; more only fills the gateway's accept backlog."""
LOADGEN_SATURATED_PCT = 85.0
"""Above this the load generator (one event loop, one core) is the bottleneck, not the gateway."""
OTHERS_BUSY_PCT = 20.0
"""Above this, other processes on the machine disturb the figures."""
CONNECT_ID, SUBSCRIBE_ID, WARMUP_ID = 1, 2, 3
FIRST_PUBLISH_ID = 4

# A namespace without history, presence or join/leave: pure fan-out. The publisher subscribes too
# (as it must in the default ``chat`` namespace), so both scenarios have the same connections.
FANOUT_CONFIG = """\
[namespaces.fanout]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
"""

# Words for chat-like payload text (it compresses about as well as real chat does).
VOCABULARY = (
    "the quick brown fox jumps over lazy dog hello world message chat room user online typing "
    "game score level player team match start end ok yes no maybe later today tomorrow meeting "
    "update status ready done build deploy error retry send receive channel stream offset"
)
WORDS = VOCABULARY.split()

# The load generator parses every delivery (100,000 a second at the defaults) on one core. For
# the benchmark's own publications this regex is ~6x cheaper than json.loads; everything else
# (replies, joins, the warm-up, an encoding spaced differently) goes through json.loads.
PUB_LINE = re.compile(r'"pub":\{"data":\{"seq":(\d+),"ts":(\d+),')


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    channel: str
    config: str | None
    """TOML for ``--config``; None runs on the built-in defaults (the ``chat`` namespace)."""
    compression: bool


SCENARIOS = (
    Scenario("baseline: no history", "fanout:bench", FANOUT_CONFIG, compression=False),
    Scenario("history + recovery", "chat:bench", None, compression=False),
    Scenario("permessage-deflate", "fanout:bench", FANOUT_CONFIG, compression=True),
)


@dataclass(frozen=True, slots=True)
class Params:
    subscribers: int
    messages: int
    rate: float
    payload_bytes: int

    @property
    def connect_timeout_s(self) -> float:
        return 60.0 + 0.2 * self.subscribers

    @property
    def drain_timeout_s(self) -> float:
        """How long after the first publish every delivery must have arrived."""
        publish_s = self.messages / self.rate if self.rate > 0 else 0.0
        return 60.0 + publish_s


@dataclass(slots=True)
class Result:
    scenario: str
    subscribers: int
    messages: int
    expected: int
    delivered: int
    lost: int
    duplicates: int
    errors: list[str]
    """Error replies and reader failures on any connection."""
    connect_s: float
    publish_s: float
    """First publish sent to last publish sent."""
    publish_lag_max_ms: float
    """The publisher's worst lateness against its ``--rate`` schedule."""
    elapsed_s: float
    """First publish sent to last delivery received."""
    throughput_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    rss_before_mb: float
    rss_connected_mb: float
    rss_end_mb: float
    rss_per_connection_kb: float
    gateway_cpu_s: float
    cpu_per_delivery_us: float
    gateway_busy_pct: float
    """Gateway CPU time over the publish phase, in % of one core."""
    loadgen_cpu_s: float
    loadgen_busy_pct: float
    """This process's CPU time over the publish phase, in % of one core: near 100 means the
    load generator, not the gateway, set the pace and part of the latency is its own queueing."""
    others_busy_pct: float
    """CPU time of every other process on the machine over the publish phase, in % of one core:
    anything but a few % means the figures are disturbed by other work."""
    log: str


# ---------------------------------------------------------------------- the gateway's /proc figures


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), from /proc/PID/stat."""
    # The command name in field 2 may hold spaces: split after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (every core), from /proc/stat."""
    # cpu  user nice system idle iowait irq softirq steal ...
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLK_TCK


# ---------------------------------------------------------------------- clients


@dataclass(slots=True)
class Tally:
    """Deliveries of the benchmark's publications across all subscribers."""

    expected: int
    unique: int = 0
    total: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    last_ns: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Conn:
    """One raw connection: connects, subscribes, answers pings, and records what it receives.

    Subscribers count publications in a shared ``Tally``; the publisher (``tally=None``) counts
    the replies to its publishes instead.
    """

    def __init__(self, ws: ClientConnection, tally: Tally | None) -> None:
        self.ws = ws
        self.tally = tally
        self.seen: set[int] = set()
        self.subscribed = asyncio.Event()
        self.warm = asyncio.Event()
        self.acks = 0
        self.acks_wanted = 0
        self.acked = asyncio.Event()
        """Set once ``acks_wanted`` replies (results or errors) to publishes have arrived."""
        self.errors: list[str] = []
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        token: str,
        channel: str,
        *,
        compression: bool,
        tally: Tally | None,
        opened: list[Conn],
    ) -> Conn:
        """Connect and subscribe; the connection is appended to ``opened`` (to be closed) at once."""
        ws = await connect(url, compression="deflate" if compression else None, max_size=None)
        conn = cls(ws, tally)
        opened.append(conn)
        assert ws.response is not None
        negotiated = "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if negotiated != compression:
            raise RuntimeError(f"permessage-deflate negotiated: {negotiated}, wanted: {compression}")
        conn.reader = asyncio.create_task(conn._read())
        # connect and subscribe in one frame, as centrifuge-js does.
        await ws.send(
            json.dumps({"id": CONNECT_ID, "connect": {"token": token}})
            + "\n"
            + json.dumps({"id": SUBSCRIBE_ID, "subscribe": {"channel": channel}})
        )
        await conn.subscribed.wait()
        if conn.errors or conn.reader.done():
            raise RuntimeError(f"subscribe failed: {conn.errors or 'connection closed'}")
        return conn

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                now = time.perf_counter_ns()
                text = frame.decode() if isinstance(frame, bytes) else frame
                for line in text.split("\n"):
                    if line == "{}":
                        await self.ws.send("{}")  # pong
                    elif self.tally is not None and (match := PUB_LINE.search(line)):
                        seq, sent_ns = int(match[1]), int(match[2])
                        self._count(self.tally, seq, now - sent_ns, now)
                    elif line:
                        self._on_message(json.loads(line), now)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a malformed message: report it rather than lose it silently
            self.errors.append(f"reader failed: {exc!r}")
        finally:
            self.subscribed.set()  # wake anyone waiting for a connection that is gone

    def _on_message(self, msg: dict[str, Any], now_ns: int) -> None:
        msg_id = msg.get("id", 0)
        if "error" in msg:
            self.errors.append(f"command {msg_id}: {msg['error']}")
        if msg_id == SUBSCRIBE_ID or (msg_id == CONNECT_ID and "error" in msg):
            self.subscribed.set()
        elif msg_id >= WARMUP_ID:
            self.acks += 1
            if self.acks == self.acks_wanted:
                self.acked.set()
        pub = msg.get("push", {}).get("pub")
        if pub is None:
            return  # a reply, or a join/leave push
        data = pub["data"]
        if "warmup" in data:
            self.warm.set()
        elif self.tally is not None:
            self._count(self.tally, data["seq"], now_ns - data["ts"], now_ns)

    def _count(self, tally: Tally, seq: int, latency_ns: int, now_ns: int) -> None:
        tally.total += 1
        if seq in self.seen:
            return
        self.seen.add(seq)
        tally.unique += 1
        tally.latencies_ns.append(latency_ns)
        tally.last_ns = now_ns
        if tally.unique == tally.expected:
            tally.done.set()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.ws.close()


def payload_texts(messages: int, payload_bytes: int) -> list[str]:
    """Chat-like text per message, sized so each ``data`` object is about ``payload_bytes``.

    Every message gets different text, so permessage-deflate cannot just point back at the
    previous message; word text compresses about as well as real chat does.
    """
    overhead = len(json.dumps({"seq": messages, "ts": time.perf_counter_ns(), "text": ""}))
    size = max(0, payload_bytes - overhead)
    texts = []
    for seq in range(messages):
        rng = random.Random(seq)
        words: list[str] = []
        length = 0
        while length < size:
            words.append(rng.choice(WORDS))
            length += len(words[-1]) + 1
        texts.append(" ".join(words)[:size])
    return texts


def percentile_ms(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_ns:
        return math.nan
    rank = min(len(sorted_ns) - 1, max(0, math.ceil(q * len(sorted_ns)) - 1))
    return sorted_ns[rank] / 1e6


# ---------------------------------------------------------------------- one scenario


class PublisherThread:
    """An event loop on its own thread, for the publisher's connection.

    The subscribers keep the main event loop busy; on that loop the publisher's timer would fire
    late and it would publish in bursts (which the gateway then batches), not at ``--rate``.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="publisher", daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the publisher's loop; cancelling the wait cancels it there too."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join, 10.0)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass(slots=True)
class Pacing:
    """When the publisher actually sent, against its schedule."""

    first_ns: int = 0
    last_ns: int = 0
    max_lag_ns: int = 0


async def run_scenario(scenario: Scenario, params: Params, workdir: Path) -> Result:
    env = {"WIREHUB_SERVER_COMPRESSION": "true"} if scenario.compression else {}
    # The publisher may send faster than the per-connection command limit and the subscribers
    # connect faster than the handshake limit: both would measure the limits, not the fan-out.
    env |= {"WIREHUB_CLIENT_COMMAND_RATE_PER_S": "0", "WIREHUB_CLIENT_CONNECTION_RATE_PER_S": "0"}
    gateway = GatewayProcess(workdir, config=scenario.config, env=env)
    await gateway.start()
    assert gateway.proc is not None
    pid = gateway.proc.pid
    tally = Tally(expected=params.subscribers * params.messages)
    pacing = Pacing()
    subscribers: list[Conn] = []
    publishers: list[Conn] = []  # at most one; a list so that a half-open one is closed too
    thread = PublisherThread()
    try:
        rss_before = rss_bytes(pid)
        connect_started = time.perf_counter()
        async with asyncio.timeout(params.connect_timeout_s):
            await open_subscribers(
                [gateway],
                params.subscribers,
                scenario.channel,
                compression=scenario.compression,
                tally=tally,
                opened=subscribers,
            )
            publisher = await thread.run(
                Conn.open(
                    gateway.ws_url,
                    gateway.token("publisher"),
                    scenario.channel,
                    compression=scenario.compression,
                    tally=None,
                    opened=publishers,
                )
            )
            publisher.acks_wanted = 1 + params.messages
            # Barrier: once every subscriber has the warm-up publication, everything queued
            # before it (subscribe replies, join pushes) is delivered and the channel is open.
            await thread.run(
                publisher.ws.send(publish_command(WARMUP_ID, scenario.channel, {"warmup": True}))
            )
            await asyncio.gather(*(c.warm.wait() for c in subscribers))
        connect_s = time.perf_counter() - connect_started
        rss_connected = rss_bytes(pid)

        texts = payload_texts(params.messages, params.payload_bytes)
        cpu_start, loadgen_start, machine_start = (
            cpu_seconds(pid),
            time.process_time(),
            machine_busy_seconds(),
        )
        started_ns = time.perf_counter_ns()
        # No collector pauses in this process while it measures latencies.
        gc.collect()
        gc.disable()
        try:
            async with asyncio.timeout(params.drain_timeout_s):
                await thread.run(publish(publisher, scenario.channel, params.rate, texts, pacing))
                await tally.done.wait()
        except TimeoutError:
            pass  # whatever did not arrive is counted as lost
        finally:
            gc.enable()
        window_s = (time.perf_counter_ns() - started_ns) / 1e9
        gateway_cpu = cpu_seconds(pid) - cpu_start
        loadgen_cpu = time.process_time() - loadgen_start
        others_cpu = max(0.0, machine_busy_seconds() - machine_start - gateway_cpu - loadgen_cpu)
        rss_end = rss_bytes(pid)
        await wait_for_publish_replies(publisher, thread)
    finally:
        await gateway.kill()
        await close_connections(subscribers, publishers, thread)

    latencies = sorted(tally.latencies_ns)
    first_ns = pacing.first_ns or started_ns
    elapsed_s = (tally.last_ns - first_ns) / 1e9 if tally.last_ns else math.nan
    connections = params.subscribers + 1
    return Result(
        scenario=scenario.name,
        subscribers=params.subscribers,
        messages=params.messages,
        expected=tally.expected,
        delivered=tally.unique,
        lost=tally.expected - tally.unique,
        duplicates=tally.total - tally.unique,
        errors=[e for c in subscribers + publishers for e in c.errors],
        connect_s=connect_s,
        publish_s=(pacing.last_ns - first_ns) / 1e9 if pacing.last_ns else math.nan,
        publish_lag_max_ms=pacing.max_lag_ns / 1e6,
        elapsed_s=elapsed_s,
        throughput_per_s=tally.unique / elapsed_s if tally.unique else 0.0,
        latency_p50_ms=percentile_ms(latencies, 0.50),
        latency_p99_ms=percentile_ms(latencies, 0.99),
        latency_max_ms=percentile_ms(latencies, 1.0),
        rss_before_mb=rss_before / 2**20,
        rss_connected_mb=rss_connected / 2**20,
        rss_end_mb=rss_end / 2**20,
        rss_per_connection_kb=(rss_connected - rss_before) / connections / 1024,
        gateway_cpu_s=gateway_cpu,
        cpu_per_delivery_us=gateway_cpu / max(tally.unique, 1) * 1e6,
        gateway_busy_pct=100 * gateway_cpu / window_s,
        loadgen_cpu_s=loadgen_cpu,
        loadgen_busy_pct=100 * loadgen_cpu / window_s,
        others_busy_pct=100 * others_cpu / window_s,
        log=str(gateway.log_path),
    )


async def open_subscribers(
    gateways: Sequence[GatewayProcess],
    count: int,
    channel: str,
    *,
    compression: bool,
    tally: Tally,
    opened: list[Conn],
) -> None:
    """Open ``count`` subscribers of ``channel``; subscriber i connects to gateway i mod len(gateways)."""
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(i: int) -> None:
        gateway = gateways[i % len(gateways)]
        async with limit:
            await Conn.open(
                gateway.ws_url,
                gateway.token(f"user{i}"),
                channel,
                compression=compression,
                tally=tally,
                opened=opened,
            )

    async with asyncio.TaskGroup() as group:
        for i in range(count):
            group.create_task(one(i))


async def wait_for_publish_replies(publisher: Conn, thread: PublisherThread) -> None:
    """Wait up to 10 s for every publish reply; missing ones are recorded as an error of the publisher."""
    try:
        async with asyncio.timeout(10.0):
            await thread.run(publisher.acked.wait())
    except TimeoutError:
        publisher.errors.append(f"{publisher.acks_wanted - publisher.acks} publish replies missing")


async def close_connections(subscribers: list[Conn], publishers: list[Conn], thread: PublisherThread) -> None:
    """Close every subscriber and publisher (failures ignored) and stop the publisher thread."""
    async with asyncio.timeout(30.0):
        await asyncio.gather(*(c.close() for c in subscribers), return_exceptions=True)
        await asyncio.gather(*(thread.run(c.close()) for c in publishers), return_exceptions=True)
        await thread.stop()


def publish_command(cmd_id: int, channel: str, data: dict[str, Any]) -> str:
    return json.dumps({"id": cmd_id, "publish": {"channel": channel, "data": data}}, separators=(",", ":"))


async def publish(publisher: Conn, channel: str, rate: float, texts: list[str], pacing: Pacing) -> None:
    """Send one publish per text on a fixed schedule (``rate`` <= 0: back to back), not awaiting replies."""
    start_ns = time.perf_counter_ns()
    for seq, text in enumerate(texts):
        due_ns = start_ns + int(seq / rate * 1e9) if rate > 0 else time.perf_counter_ns()
        delay_s = (due_ns - time.perf_counter_ns()) / 1e9
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        now_ns = time.perf_counter_ns()
        pacing.max_lag_ns = max(pacing.max_lag_ns, now_ns - due_ns)
        data = {"seq": seq, "ts": now_ns, "text": text}
        await publisher.ws.send(publish_command(FIRST_PUBLISH_ID + seq, channel, data))
        pacing.first_ns = pacing.first_ns or now_ns
        pacing.last_ns = now_ns


# ---------------------------------------------------------------------- report


def ratios(results: list[Result]) -> dict[str, dict[str, float]]:
    """Each scenario relative to the first (the baseline)."""
    base = results[0]

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    return {
        r.scenario: {
            "throughput": ratio(r.throughput_per_s, base.throughput_per_s),
            "latency_p99": ratio(r.latency_p99_ms, base.latency_p99_ms),
            "cpu_per_delivery": ratio(r.cpu_per_delivery_us, base.cpu_per_delivery_us),
            "rss_per_connection": ratio(r.rss_per_connection_kb, base.rss_per_connection_kb),
        }
        for r in results
    }


ROWS: tuple[tuple[str, str, str], ...] = (
    ("delivered", "delivered", "{:.0f}"),
    ("lost", "lost", "{:.0f}"),
    ("connect + subscribe all (s)", "connect_s", "{:.2f}"),
    ("publishing (s)", "publish_s", "{:.2f}"),
    ("publisher max lag (ms)", "publish_lag_max_ms", "{:.1f}"),
    ("first publish to last delivery (s)", "elapsed_s", "{:.2f}"),
    ("deliveries/s", "throughput_per_s", "{:,.0f}"),
    ("latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
    ("latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
    ("latency max (ms)", "latency_max_ms", "{:.1f}"),
    ("gateway CPU (s)", "gateway_cpu_s", "{:.2f}"),
    ("gateway CPU busy (%)", "gateway_busy_pct", "{:.0f}"),
    ("gateway CPU/delivery (us)", "cpu_per_delivery_us", "{:.1f}"),
    ("load generator CPU (s)", "loadgen_cpu_s", "{:.2f}"),
    ("load generator CPU busy (%)", "loadgen_busy_pct", "{:.0f}"),
    ("other processes CPU busy (%)", "others_busy_pct", "{:.0f}"),
    ("RSS before (MiB)", "rss_before_mb", "{:.1f}"),
    ("RSS connected (MiB)", "rss_connected_mb", "{:.1f}"),
    ("RSS end (MiB)", "rss_end_mb", "{:.1f}"),
    ("RSS/connection (KiB)", "rss_per_connection_kb", "{:.1f}"),
)
RATIO_ROWS = (
    ("x throughput", "throughput"),
    ("x latency p99", "latency_p99"),
    ("x CPU/delivery", "cpu_per_delivery"),
    ("x RSS/connection", "rss_per_connection"),
)


def table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, ["-" * w for w in widths], *rows]:
        first, *rest = row
        cells = [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        out.append("  ".join(cells))
    return "\n".join(out)


def report(results: list[Result], rel: dict[str, dict[str, float]]) -> str:
    rows = [[label] + [fmt.format(getattr(r, key)) for r in results] for label, key, fmt in ROWS]
    rows += [[label] + [f"{rel[r.scenario][key]:.2f}" for r in results] for label, key in RATIO_ROWS]
    return table(["", *(r.scenario for r in results)], rows)


def compare(results: list[Result], params: Params, baseline: dict[str, Any]) -> str:
    """Current figures against an earlier results file, scenario by scenario (current / earlier)."""
    earlier = {s["scenario"]: s for s in baseline["scenarios"]}
    rows = []
    for r in results:
        old = earlier.get(r.scenario)
        if old is None:
            continue
        for label, key in (
            ("deliveries/s", "throughput_per_s"),
            ("latency p99 (ms)", "latency_p99_ms"),
            ("CPU/delivery (us)", "cpu_per_delivery_us"),
            ("RSS/connection (KiB)", "rss_per_connection_kb"),
        ):
            now, then = float(getattr(r, key)), float(old[key])
            change = f"{now / then:.2f}" if then else "n/a"
            rows.append([f"{r.scenario}: {label}", f"{then:,.1f}", f"{now:,.1f}", change])
    text = table(["", "earlier", "now", "now/earlier"], rows)
    if baseline["params"] != asdict(params):
        text = f"warning: the earlier run had other parameters: {baseline['params']}\n{text}"
    return text


# ---------------------------------------------------------------------- main


async def run(params: Params, workdirs: list[Path]) -> list[Result]:
    results = []
    for i, (scenario, workdir) in enumerate(zip(SCENARIOS, workdirs, strict=True), 1):
        print(f"[{i}/{len(SCENARIOS)}] {scenario.name} ...", flush=True)
        total = params.connect_timeout_s + params.drain_timeout_s + 60.0
        async with asyncio.timeout(total):
            result = await run_scenario(scenario, params, workdir)
        print(
            f"    {result.delivered}/{result.expected} delivered, "
            f"p99 {result.latency_p99_ms:.1f} ms, {result.throughput_per_s:,.0f} deliveries/s",
            flush=True,
        )
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=500, help="subscriber connections (N)")
    parser.add_argument("--messages", type=int, default=200, help="publications (M)")
    parser.add_argument("--rate", type=float, default=200.0, help="publications per second; 0: unpaced")
    parser.add_argument("--payload-bytes", type=int, default=200, help="size of each publication's data")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fanout.json"), help="JSON results")
    parser.add_argument("--baseline", type=Path, help="an earlier results JSON to compare against")
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.messages < 1 or args.payload_bytes < 0:
        parser.error("--subscribers and --messages must be positive, --payload-bytes not negative")
    params = Params(args.subscribers, args.messages, args.rate, args.payload_bytes)

    # Config, database and log of each scenario's gateway; kept for a look after the run.
    root = Path(tempfile.mkdtemp(prefix="wirehub-bench-"))
    workdirs = [root / f"scenario{i}" for i in range(1, len(SCENARIOS) + 1)]
    for workdir in workdirs:
        workdir.mkdir()
    print(f"gateway logs under {root}", flush=True)

    # The publisher's thread waits for the GIL while the subscribers' loop holds it: hand it over
    # every 1 ms instead of the default 5 ms, so publishes go out closer to their schedule.
    sys.setswitchinterval(0.001)
    results = asyncio.run(run(params, workdirs))
    rel = ratios(results)
    print()
    print(report(results, rel))
    for r in results:
        if r.loadgen_busy_pct >= LOADGEN_SATURATED_PCT:
            print(
                f"note: {r.scenario}: the load generator was {r.loadgen_busy_pct:.0f}% busy;"
                " its latency figures include queueing in the load generator itself"
            )
        if r.others_busy_pct >= OTHERS_BUSY_PCT:
            print(
                f"warning: {r.scenario}: other processes used {r.others_busy_pct:.0f}% of a core"
                " during the publish phase; run again on a quiet machine"
            )

    document = {
        "command": " ".join(["python -m bench.fanout", *(argv if argv is not None else sys.argv[1:])]),
        "params": asdict(params),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scenarios": [asdict(r) for r in results],
        "ratios_to_baseline": rel,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {args.out}")

    if args.baseline is not None:
        print()
        print(compare(results, params, json.loads(args.baseline.read_text(encoding="utf-8"))))

    failed = [r for r in results if r.lost or r.errors]
    for r in failed:
        print(f"FAIL {r.scenario}: {r.lost} deliveries lost, errors: {r.errors[:3]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
