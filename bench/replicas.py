"""Fan-out across replicas: one channel, N subscribers on one gateway or split over two via Redis.

Run from the repository root::

    python -m bench.replicas [--subscribers 1000] [--messages 200] [--rate 50]
                             [--payload-bytes 200] [--out bench/results/replicas.json]

Three scenarios run one after the other, each on fresh ``wirehub serve`` processes, with the same
subscribers, publisher and payloads (the load generator of ``bench.fanout``):

1. ``1 replica, memory broker``: all N subscribers on one gateway with the in-process broker;
2. ``1 replica, Redis broker``: the same, with the gateway fanning out through Redis;
3. ``2 replicas, Redis broker``: N/2 subscribers on each of two gateways sharing one Redis; the
   publisher is on the first.

The benchmark starts its own ``redis-server`` on a free loopback port. The channel is in a
namespace without history: pure fan-out. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.gateway_process import GatewayProcess
from tests.services import RedisServer

from bench.fanout import (
    FANOUT_CONFIG,
    LOADGEN_SATURATED_PCT,
    OTHERS_BUSY_PCT,
    WARMUP_ID,
    Conn,
    Pacing,
    PublisherThread,
    Tally,
    close_connections,
    cpu_seconds,
    machine_busy_seconds,
    open_subscribers,
    payload_texts,
    percentile_ms,
    publish,
    publish_command,
    rss_bytes,
    table,
    wait_for_publish_replies,
)

CHANNEL = "fanout:bench"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    replicas: int
    redis: bool


SCENARIOS = (
    Scenario("1 replica, memory broker", 1, redis=False),
    Scenario("1 replica, Redis broker", 1, redis=True),
    Scenario("2 replicas, Redis broker", 2, redis=True),
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
        return 60.0 + (self.messages / self.rate if self.rate > 0 else 0.0)


@dataclass(slots=True)
class Result:
    scenario: str
    replicas: int
    subscribers: int
    messages: int
    expected: int
    delivered: int
    lost: int
    duplicates: int
    errors: list[str]
    connect_s: float
    publish_s: float
    publish_lag_max_ms: float
    elapsed_s: float
    throughput_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    gateway_cpu_s: float
    """All replicas together, over the publish phase."""
    gateway_busy_pct: float
    cpu_per_delivery_us: float
    redis_cpu_s: float
    redis_busy_pct: float
    loadgen_busy_pct: float
    others_busy_pct: float
    rss_per_replica_mb: list[float]
    logs: list[str]


async def run_scenario(scenario: Scenario, params: Params, workdir: Path, redis: RedisServer) -> Result:
    # As in bench.fanout: no per-connection rate limits, which would measure the limits.
    env = {"WIREHUB_CLIENT_COMMAND_RATE_PER_S": "0", "WIREHUB_CLIENT_CONNECTION_RATE_PER_S": "0"}
    if scenario.redis:
        env |= {"WIREHUB_BROKER_URL": redis.url, "WIREHUB_BROKER_KEY_PREFIX": workdir.name}
    gateways = []
    for i in range(scenario.replicas):
        replica_dir = workdir / f"replica{i + 1}"
        replica_dir.mkdir()
        gateways.append(GatewayProcess(replica_dir, config=FANOUT_CONFIG, env=env))
    tally = Tally(expected=params.subscribers * params.messages)
    pacing = Pacing()
    subscribers: list[Conn] = []
    publishers: list[Conn] = []
    thread = PublisherThread()
    try:
        for gateway in gateways:
            await gateway.start()
        pids = [gw.proc.pid for gw in gateways if gw.proc is not None]
        assert redis.proc is not None
        redis_pid = redis.proc.pid
        connect_started = time.perf_counter()
        async with asyncio.timeout(params.connect_timeout_s):
            await open_subscribers(
                gateways, params.subscribers, CHANNEL, compression=False, tally=tally, opened=subscribers
            )
            publisher = await thread.run(
                Conn.open(
                    gateways[0].ws_url,
                    gateways[0].token("publisher"),
                    CHANNEL,
                    compression=False,
                    tally=None,
                    opened=publishers,
                )
            )
            publisher.acks_wanted = 1 + params.messages
            # Barrier: every subscriber, on every replica, has the warm-up publication.
            await thread.run(publisher.ws.send(publish_command(WARMUP_ID, CHANNEL, {"warmup": True})))
            await asyncio.gather(*(c.warm.wait() for c in subscribers))
        connect_s = time.perf_counter() - connect_started

        texts = payload_texts(params.messages, params.payload_bytes)
        cpu_start = sum(cpu_seconds(pid) for pid in pids)
        redis_start = cpu_seconds(redis_pid) if scenario.redis else 0.0
        loadgen_start, machine_start = time.process_time(), machine_busy_seconds()
        started_ns = time.perf_counter_ns()
        gc.collect()
        gc.disable()
        try:
            async with asyncio.timeout(params.drain_timeout_s):
                await thread.run(publish(publisher, CHANNEL, params.rate, texts, pacing))
                await tally.done.wait()
        except TimeoutError:
            pass  # whatever did not arrive is counted as lost
        finally:
            gc.enable()
        window_s = (time.perf_counter_ns() - started_ns) / 1e9
        gateway_cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_start
        redis_cpu = cpu_seconds(redis_pid) - redis_start if scenario.redis else 0.0
        loadgen_cpu = time.process_time() - loadgen_start
        machine_cpu = machine_busy_seconds() - machine_start
        others_cpu = max(0.0, machine_cpu - gateway_cpu - redis_cpu - loadgen_cpu)
        rss = [rss_bytes(pid) / 2**20 for pid in pids]
        await wait_for_publish_replies(publisher, thread)
    finally:
        for gateway in gateways:
            await gateway.kill()
        await close_connections(subscribers, publishers, thread)

    latencies = sorted(tally.latencies_ns)
    first_ns = pacing.first_ns or started_ns
    elapsed_s = (tally.last_ns - first_ns) / 1e9 if tally.last_ns else math.nan
    return Result(
        scenario=scenario.name,
        replicas=scenario.replicas,
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
        gateway_cpu_s=gateway_cpu,
        gateway_busy_pct=100 * gateway_cpu / window_s,
        cpu_per_delivery_us=gateway_cpu / max(tally.unique, 1) * 1e6,
        redis_cpu_s=redis_cpu,
        redis_busy_pct=100 * redis_cpu / window_s,
        loadgen_busy_pct=100 * loadgen_cpu / window_s,
        others_busy_pct=100 * others_cpu / window_s,
        rss_per_replica_mb=rss,
        logs=[str(gw.log_path) for gw in gateways],
    )


# ---------------------------------------------------------------------- report

ROWS: tuple[tuple[str, str, str], ...] = (
    ("replicas", "replicas", "{:.0f}"),
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
    ("gateway CPU, all replicas (s)", "gateway_cpu_s", "{:.2f}"),
    ("gateway CPU busy (% of a core)", "gateway_busy_pct", "{:.0f}"),
    ("gateway CPU/delivery (us)", "cpu_per_delivery_us", "{:.1f}"),
    ("redis-server CPU busy (%)", "redis_busy_pct", "{:.0f}"),
    ("load generator CPU busy (%)", "loadgen_busy_pct", "{:.0f}"),
    ("other processes CPU busy (%)", "others_busy_pct", "{:.0f}"),
)


def ratios(results: list[Result]) -> dict[str, dict[str, float]]:
    """Each scenario relative to the first (one replica, memory broker)."""
    base = results[0]

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    return {
        r.scenario: {
            "throughput": ratio(r.throughput_per_s, base.throughput_per_s),
            "latency_p99": ratio(r.latency_p99_ms, base.latency_p99_ms),
            "cpu_per_delivery": ratio(r.cpu_per_delivery_us, base.cpu_per_delivery_us),
        }
        for r in results
    }


def report(results: list[Result], rel: dict[str, dict[str, float]]) -> str:
    rows = [[label] + [fmt.format(getattr(r, key)) for r in results] for label, key, fmt in ROWS]
    rows.append(
        ["RSS per replica (MiB)"] + [" / ".join(f"{m:.1f}" for m in r.rss_per_replica_mb) for r in results]
    )
    for label, key in (
        ("x throughput", "throughput"),
        ("x latency p99", "latency_p99"),
        ("x CPU/delivery", "cpu_per_delivery"),
    ):
        rows.append([label] + [f"{rel[r.scenario][key]:.2f}" for r in results])
    return table(["", *(r.scenario for r in results)], rows)


async def run(params: Params, root: Path) -> list[Result]:
    redis = RedisServer(root / "redis")
    await redis.start()
    try:
        results = []
        for i, scenario in enumerate(SCENARIOS, 1):
            print(f"[{i}/{len(SCENARIOS)}] {scenario.name} ...", flush=True)
            workdir = root / f"scenario{i}"
            workdir.mkdir()
            async with asyncio.timeout(params.connect_timeout_s + params.drain_timeout_s + 60.0):
                result = await run_scenario(scenario, params, workdir, redis)
            print(
                f"    {result.delivered}/{result.expected} delivered, p99 {result.latency_p99_ms:.1f} ms,"
                f" {result.throughput_per_s:,.0f} deliveries/s",
                flush=True,
            )
            results.append(result)
        return results
    finally:
        await redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000, help="subscriber connections (N)")
    parser.add_argument("--messages", type=int, default=200, help="publications (M)")
    parser.add_argument("--rate", type=float, default=50.0, help="publications per second; 0: unpaced")
    parser.add_argument("--payload-bytes", type=int, default=200, help="size of each publication's data")
    parser.add_argument("--out", type=Path, default=Path("bench/results/replicas.json"), help="JSON results")
    args = parser.parse_args(argv)
    if args.subscribers < 2 or args.messages < 1 or args.payload_bytes < 0:
        parser.error("--subscribers must be at least 2, --messages positive, --payload-bytes not negative")
    params = Params(args.subscribers, args.messages, args.rate, args.payload_bytes)

    root = Path(tempfile.mkdtemp(prefix="wirehub-bench-replicas-"))
    print(f"gateway and redis logs under {root}", flush=True)
    sys.setswitchinterval(0.001)  # as in bench.fanout: the publisher thread keeps its schedule
    results = asyncio.run(run(params, root))
    rel = ratios(results)
    print()
    print(report(results, rel))
    for r in results:
        if r.loadgen_busy_pct >= LOADGEN_SATURATED_PCT:
            print(f"note: {r.scenario}: the load generator was {r.loadgen_busy_pct:.0f}% busy")
        if r.others_busy_pct >= OTHERS_BUSY_PCT:
            print(
                f"warning: {r.scenario}: other processes used {r.others_busy_pct:.0f}% of a core; run again"
            )

    document: dict[str, Any] = {
        "command": " ".join(["python -m bench.replicas", *(argv if argv is not None else sys.argv[1:])]),
        "params": asdict(params),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scenarios": [asdict(r) for r in results],
        "ratios_to_one_replica_memory": rel,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {args.out}")

    failed = [r for r in results if r.lost or r.errors]
    for r in failed:
        print(f"FAIL {r.scenario}: {r.lost} deliveries lost, errors: {r.errors[:3]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
