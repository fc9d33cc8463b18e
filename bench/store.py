"""Persisted publishes per second into the stores: group commit versus one insert per publish.

Run from the repository root::

    python -m bench.store [--publishers 64] [--messages 4000] [--channels 1] [--payload-bytes 200]
                          [--repeat 3] [--mongodb-url URL] [--out bench/results/store.json]

Each scenario appends ``--messages`` chat-like publications to ``--channels`` channels from
``--publishers`` concurrent tasks, exactly as the node's publish path does for a channel with
history (the built-in ``chat`` retention: 100 publications, one day):

* **group commit**: every publish goes through ``PublishPipeline`` (what ``Node.publish`` uses):
  publishes to one channel that arrive while an append is in flight share the next round trip;
* **one insert per publish**: every publish calls ``store.append(channel, [pub])`` itself.

Both run over MongoDB (the nx-27017 stand-in, started here on a free port, unless
``--mongodb-url`` names a real one; a database of its own, dropped afterwards) and over SQLite (a
file in a temp dir) for reference, on fresh storage each time, with the same concurrency. Each
scenario verifies that the offsets handed out are exactly 1..N per channel. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tests.mongo_helpers import database_url, drop_database
from tests.services import MongoStandIn

from bench.fanout import cpu_seconds, machine_busy_seconds
from wirehub.broker.memory import MemoryBroker
from wirehub.server.pipeline import PublishPipeline
from wirehub.storage.base import HistoryQuery, MessageStore
from wirehub.storage.mongo import MongoStore
from wirehub.storage.sqlite import SqliteStore
from wirehub.types import (
    Appended,
    ClientInfo,
    HistoryLimits,
    HistoryPage,
    NewPublication,
    StreamPosition,
)

LIMITS = HistoryLimits(size=100, ttl_s=86400.0)
"""The built-in ``chat`` namespace's retention."""
OTHERS_BUSY_PCT = 20.0
MODES = ("group commit", "one insert per publish")
TIMEOUT_S = 600.0
WORDS = ("hello", "chat", "room", "message", "typing", "ready", "done", "later", "maybe", "yes", "ok", "game")


class CountingStore:
    """A MessageStore that counts ``append`` calls (one store round trip each) and their sizes."""

    def __init__(self, inner: MessageStore) -> None:
        self.inner = inner
        self.appends = 0
        self.appended = 0

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def wait_ready(self) -> None:
        await self.inner.wait_ready()

    async def check(self) -> None:
        await self.inner.check()

    async def append(
        self, channel: str, pubs: Sequence[NewPublication], *, limits: HistoryLimits
    ) -> Appended:
        self.appends += 1
        self.appended += len(pubs)
        return await self.inner.append(channel, pubs, limits=limits)

    async def read(self, channel: str, query: HistoryQuery) -> HistoryPage:
        return await self.inner.read(channel, query)

    async def position(self, channel: str) -> StreamPosition:
        return await self.inner.position(channel)

    async def remove_history(self, channel: str) -> None:
        await self.inner.remove_history(channel)

    async def expire_streams(self, *, limit: int = 500) -> int:
        return await self.inner.expire_streams(limit=limit)


@dataclass(frozen=True, slots=True)
class Params:
    publishers: int
    messages: int
    channels: int
    payload_bytes: int
    repeat: int


@dataclass(slots=True)
class Result:
    store: str
    mode: str
    publishes: int
    elapsed_s: float
    publishes_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    round_trips: int
    """``append`` calls: each is one store write (for MongoDB: one compare-and-set plus one insert)."""
    mean_batch: float
    loadgen_busy_pct: float
    """This process (publishers and store client) over the run, in % of one core."""
    server_busy_pct: float | None
    """The stand-in's CPU over the run, in % of one core (None for SQLite and a real MongoDB)."""
    others_busy_pct: float
    """Every other process on the machine, in % of one core: figures are disturbed above ~20."""


def payload(n: int, size: int) -> dict[str, Any]:
    words = WORDS
    text = " ".join(words[(n * 7 + i) % len(words)] for i in range(size // 5))[:size]
    return {"seq": n, "text": text}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


async def run_one(
    name: str, mode: str, make_store: Callable[[], MessageStore], params: Params, server_pid: int | None
) -> Result:
    store = CountingStore(make_store())
    await store.start()
    if isinstance(store.inner, MongoStore):
        async with asyncio.timeout(60):
            await store.inner.wait_ready()
    # No node listens on the in-process broker: the pipeline's broker step costs next to nothing.
    pipeline = PublishPipeline(store, MemoryBroker(), lambda channel, message: None)
    info = ClientInfo(user="bench", client="c1")
    pubs = [
        NewPublication(data=payload(n, params.payload_bytes), info=info, time_ms=int(time.time() * 1000))
        for n in range(params.messages)
    ]
    latencies: list[float] = []
    offsets: dict[str, list[int]] = {f"chat:bench-{c}": [] for c in range(params.channels)}
    channels = list(offsets)
    start = asyncio.Event()

    async def publisher(k: int) -> None:
        await start.wait()
        for n in range(k, params.messages, params.publishers):
            channel = channels[n % len(channels)]
            t0 = time.perf_counter()
            if mode == "group commit":
                pub, _ = await pipeline.publish(channel, pubs[n], LIMITS)
            else:
                (pub,) = (await store.append(channel, [pubs[n]], limits=LIMITS)).publications
            latencies.append(time.perf_counter() - t0)
            offsets[channel].append(pub.offset)

    tasks = [asyncio.create_task(publisher(k)) for k in range(params.publishers)]
    await asyncio.sleep(0)
    busy0, own0 = machine_busy_seconds(), time.process_time()
    server0 = cpu_seconds(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    start.set()
    async with asyncio.timeout(TIMEOUT_S):
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    own = time.process_time() - own0
    server = cpu_seconds(server_pid) - server0 if server_pid else 0.0
    others = machine_busy_seconds() - busy0 - own - server

    for channel, got in offsets.items():
        if sorted(got) != list(range(1, len(got) + 1)):
            raise AssertionError(f"{name}/{mode}: offsets of {channel} are not exactly 1..{len(got)}")
        if (await store.position(channel)).offset != len(got):
            raise AssertionError(f"{name}/{mode}: top of {channel} is not {len(got)}")
    await pipeline.close()
    await store.close()
    return Result(
        store=name,
        mode=mode,
        publishes=params.messages,
        elapsed_s=round(elapsed, 3),
        publishes_per_s=round(params.messages / elapsed, 1),
        latency_p50_ms=round(percentile(latencies, 50) * 1000, 2),
        latency_p99_ms=round(percentile(latencies, 99) * 1000, 2),
        round_trips=store.appends,
        mean_batch=round(store.appended / store.appends, 2),
        loadgen_busy_pct=round(100 * own / elapsed),
        server_busy_pct=round(100 * server / elapsed) if server_pid else None,
        others_busy_pct=round(100 * max(others, 0.0) / elapsed),
    )


async def run(params: Params, mongodb_url: str | None, workdir: Path) -> list[list[Result]]:
    """All scenarios, ``params.repeat`` rounds; within a round each store runs both modes back to back."""
    server: MongoStandIn | None = None
    if mongodb_url is None:
        server = MongoStandIn(workdir / "nx-27017")
        await server.start()
        mongodb_url = server.url
    server_pid = server.proc.pid if server is not None and server.proc is not None else None
    rounds: list[list[Result]] = []
    try:
        for r in range(params.repeat):
            results: list[Result] = []
            for mode in MODES:
                db = database_url(mongodb_url, f"wirehub_bench_{secrets.token_hex(4)}")
                try:
                    results.append(
                        await run_one("mongodb", mode, partial(MongoStore, db), params, server_pid)
                    )
                finally:
                    await drop_database(db)
            for mode in MODES:
                path = workdir / f"sqlite-{r}-{mode.split()[0]}.db"
                results.append(await run_one("sqlite", mode, partial(SqliteStore, str(path)), params, None))
            print_round(results, r + 1)
            rounds.append(results)
    finally:
        if server is not None:
            await server.stop()
    return rounds


def print_round(results: list[Result], number: int) -> None:
    rows = [
        ("publishes/s", "publishes_per_s", "{:,.0f}"),
        ("latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
        ("latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
        ("store round trips", "round_trips", "{:,}"),
        ("mean batch", "mean_batch", "{:.1f}"),
        ("bench process CPU busy (%)", "loadgen_busy_pct", "{}"),
        ("stand-in CPU busy (%)", "server_busy_pct", "{}"),
        ("other processes CPU busy (%)", "others_busy_pct", "{}"),
    ]
    heads = [f"{r.store}: {r.mode}" for r in results]
    width = max(len(h) for h in heads) + 2
    print(f"\nround {number}")
    print(f"{'':30}" + "".join(f"{h:>{width}}" for h in heads))
    for label, attr, fmt in rows:
        cells = [getattr(r, attr) for r in results]
        print(f"{label:30}" + "".join(f"{'-' if c is None else fmt.format(c):>{width}}" for c in cells))
    for r in results:
        if r.others_busy_pct >= OTHERS_BUSY_PCT:
            print(f"warning: other processes were {r.others_busy_pct}% busy during {r.store}: {r.mode}")


def summarise(rounds: list[list[Result]]) -> dict[str, Any]:
    """Median publishes/s per scenario over the rounds, and group commit ÷ one insert per store."""
    medians: dict[str, float] = {}
    for i, first in enumerate(rounds[0]):
        medians[f"{first.store}: {first.mode}"] = statistics.median(rnd[i].publishes_per_s for rnd in rounds)
    ratios = {
        store: round(medians[f"{store}: group commit"] / medians[f"{store}: one insert per publish"], 2)
        for store in ("mongodb", "sqlite")
    }
    return {"median_publishes_per_s": medians, "group_commit_speedup": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n")[0])
    parser.add_argument("--publishers", type=int, default=64, help="concurrent publishing tasks")
    parser.add_argument("--messages", type=int, default=4000, help="publications per scenario")
    parser.add_argument("--channels", type=int, default=1, help="channels the publications spread over")
    parser.add_argument("--payload-bytes", type=int, default=200, help="size of each publication's text")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of all scenarios (medians reported)")
    parser.add_argument("--mongodb-url", default=None, help="a real MongoDB instead of the stand-in")
    parser.add_argument("--out", type=Path, default=Path("bench/results/store.json"))
    args = parser.parse_args(argv)
    params = Params(args.publishers, args.messages, args.channels, args.payload_bytes, args.repeat)
    with tempfile.TemporaryDirectory(prefix="wirehub-bench-store-") as tmp:
        rounds = asyncio.run(run(params, args.mongodb_url, Path(tmp)))
    summary = summarise(rounds)
    print("\nmedian publishes/s:")
    for name, value in summary["median_publishes_per_s"].items():
        print(f"  {name:40} {value:>10,.0f}")
    for store, ratio in summary["group_commit_speedup"].items():
        print(f"x group commit / one insert per publish, {store}: {ratio:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "params": asdict(params),
                "mongodb": "stand-in nx-27017" if args.mongodb_url is None else "external",
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                    "platform": platform.platform(),
                },
                "rounds": [[asdict(r) for r in rnd] for rnd in rounds],
                **summary,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
