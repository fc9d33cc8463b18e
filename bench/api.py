"""Publishes per second through the server API against a client connection, side by side in one run.

Run from the repository root::

    python -m bench.api [--subscribers 1000] [--messages 300] [--window 16] [--batch 10]

For a channel without history (``live``) and one with history on SQLite (``chat``), three ways
of publishing the same M publications into a channel that N subscribers follow, each on a
fresh ``wirehub serve`` process:

* ``client``: one WebSocket connection publishes, with ``--window`` publishes in flight;
* ``api``: ``POST /api/publish``, ``--window`` requests in flight;
* ``api batch``: ``POST /api/batch`` of ``--batch`` publishes each, ``--window / --batch``
  requests in flight (the same number of publications in flight).

The subscribers are raw WebSocket clients of ``bench/fanout.py`` that count every delivery by
sequence number; the publisher runs on its own thread and event loop. See bench/README.md for
what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from tests.gateway_process import GatewayProcess
from websockets.asyncio.client import ClientConnection, connect

from bench.fanout import (
    Conn,
    PublisherThread,
    Tally,
    cpu_seconds,
    machine_busy_seconds,
    open_subscribers,
    payload_texts,
    percentile_ms,
    table,
)

API_KEY = "bench-api-key"
CONFIG = """\
[namespaces.live]
allow_subscribe_for_client = true
allow_publish_for_client = true

[namespaces.chat]
history_size = 100
history_ttl_s = 86400.0
allow_subscribe_for_client = true
allow_publish_for_client = true
"""
MODES = ("client", "api", "api batch")
CHANNELS = {"no history": "live:bench", "history (SQLite)": "chat:bench"}
OTHERS_BUSY_PCT = 20.0

Publish = Callable[[int, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Params:
    subscribers: int
    messages: int
    window: int
    batch: int
    payload_bytes: int


@dataclass(slots=True)
class Result:
    scenario: str
    mode: str
    channel: str
    publishes_per_s: float
    deliveries_per_s: float
    lost: int
    errors: int
    latency_p50_ms: float
    latency_p99_ms: float
    gateway_cpu_per_publish_us: float
    gateway_busy_pct: float
    others_busy_pct: float


class ClientPublisher:
    """A connection that publishes and counts the replies (it does not subscribe)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, gateway: GatewayProcess) -> ClientPublisher:
        ws = await connect(gateway.ws_url, compression=None, max_size=None)
        publisher = cls(ws)
        await ws.send(json.dumps({"id": 1, "connect": {"token": gateway.token("publisher")}}))
        reply = await publisher.replies.get()
        if "connect" not in reply:
            raise RuntimeError(f"publisher connect failed: {reply}")
        return publisher

    async def _read(self) -> None:
        async for frame in self.ws:
            text = frame.decode() if isinstance(frame, bytes) else frame
            for line in text.split("\n"):
                if line == "{}":
                    await self.ws.send("{}")
                elif line:
                    message = json.loads(line)
                    if "id" in message:
                        self.replies.put_nowait(message)

    async def close(self) -> None:
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.ws.close()


async def publish_windowed(texts: list[str], window: int, send: Publish) -> None:
    """Call ``send(seq, data)`` for every text, at most ``window`` in flight at once."""
    slots = asyncio.Semaphore(window)
    pending: set[asyncio.Task[None]] = set()

    async def one(seq: int, data: dict[str, Any]) -> None:
        try:
            await send(seq, data)
        finally:
            slots.release()

    for seq, text in enumerate(texts):
        await slots.acquire()
        task = asyncio.create_task(one(seq, {"seq": seq, "ts": time.perf_counter_ns(), "text": text}))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)


async def publish_all(
    mode: str, gateway: GatewayProcess, channel: str, texts: list[str], params: Params
) -> int:
    """Publish every text in ``mode``; returns how many publishes failed."""
    failures = 0
    if mode == "client":
        publisher = await ClientPublisher.open(gateway)
        waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

        async def route_replies() -> None:
            while True:
                reply = await publisher.replies.get()
                waiting.pop(reply["id"]).set_result(reply)

        router = asyncio.create_task(route_replies())

        async def send_client(seq: int, data: dict[str, Any]) -> None:
            nonlocal failures
            cmd_id = seq + 2
            waiting[cmd_id] = asyncio.get_running_loop().create_future()
            command = {"id": cmd_id, "publish": {"channel": channel, "data": data}}
            await publisher.ws.send(json.dumps(command, separators=(",", ":")))
            if "error" in await waiting[cmd_id]:
                failures += 1

        try:
            await publish_windowed(texts, params.window, send_client)
        finally:
            router.cancel()
            await publisher.close()
        return failures

    headers = {"X-API-Key": API_KEY}
    async with aiohttp.ClientSession(headers=headers) as http:
        if mode == "api":

            async def send_api(seq: int, data: dict[str, Any]) -> None:
                nonlocal failures
                body = {"channel": channel, "data": data}
                async with http.post(f"{gateway.http_url}/api/publish", json=body) as resp:
                    if "error" in await resp.json():
                        failures += 1

            await publish_windowed(texts, params.window, send_api)
            return failures

        batches = [texts[i : i + params.batch] for i in range(0, len(texts), params.batch)]

        async def send_batch(index: int, _: dict[str, Any]) -> None:
            nonlocal failures
            first = index * params.batch
            commands = [
                {
                    "publish": {
                        "channel": channel,
                        "data": {"seq": first + k, "ts": time.perf_counter_ns(), "text": t},
                    }
                }
                for k, t in enumerate(batches[index])
            ]
            async with http.post(f"{gateway.http_url}/api/batch", json={"commands": commands}) as resp:
                failures += sum("error" in reply for reply in (await resp.json())["replies"])

        await publish_windowed([""] * len(batches), max(1, params.window // params.batch), send_batch)
        return failures


async def run_scenario(mode: str, channel_label: str, params: Params, workdir: Path) -> Result:
    channel = CHANNELS[channel_label]
    env = {
        "WIREHUB_API_KEY": API_KEY,
        "WIREHUB_CLIENT_COMMAND_RATE_PER_S": "0",
        "WIREHUB_CLIENT_CONNECTION_RATE_PER_S": "0",
    }
    gateway = GatewayProcess(workdir, config=CONFIG, env=env)
    await gateway.start()
    assert gateway.proc is not None
    pid = gateway.proc.pid
    tally = Tally(expected=params.subscribers * params.messages)
    subscribers: list[Conn] = []
    thread = PublisherThread()
    try:
        async with asyncio.timeout(60 + 0.2 * params.subscribers):
            await open_subscribers(
                [gateway], params.subscribers, channel, compression=False, tally=tally, opened=subscribers
            )
        texts = payload_texts(params.messages, params.payload_bytes)
        cpu_start, loadgen_start, machine_start = (
            cpu_seconds(pid),
            time.process_time(),
            machine_busy_seconds(),
        )
        started = time.perf_counter()
        gc.collect()
        gc.disable()
        try:
            async with asyncio.timeout(120):
                errors = await thread.run(publish_all(mode, gateway, channel, texts, params))
                published_s = time.perf_counter() - started
                if tally.expected:
                    await tally.done.wait()
        finally:
            gc.enable()
        window_s = time.perf_counter() - started
        gateway_cpu = cpu_seconds(pid) - cpu_start
        loadgen_cpu = time.process_time() - loadgen_start
        others = max(0.0, machine_busy_seconds() - machine_start - gateway_cpu - loadgen_cpu)
    finally:
        await gateway.kill()
        await asyncio.gather(*(c.close() for c in subscribers), return_exceptions=True)
        await thread.stop()
    latencies = sorted(tally.latencies_ns)
    return Result(
        scenario=f"{mode}, {channel_label}",
        mode=mode,
        channel=channel_label,
        publishes_per_s=params.messages / published_s,
        deliveries_per_s=tally.unique / window_s if tally.unique else 0.0,
        lost=tally.expected - tally.unique,
        errors=errors,
        latency_p50_ms=percentile_ms(latencies, 0.5),
        latency_p99_ms=percentile_ms(latencies, 0.99),
        gateway_cpu_per_publish_us=gateway_cpu / params.messages * 1e6,
        gateway_busy_pct=100 * gateway_cpu / window_s,
        others_busy_pct=100 * others / window_s,
    )


def report(results: list[Result]) -> str:
    by_name = {(r.mode, r.channel): r for r in results}
    rows = []
    for r in results:
        base = by_name[("client", r.channel)]
        rows.append(
            [
                r.scenario,
                f"{r.publishes_per_s:,.0f}",
                f"{r.publishes_per_s / base.publishes_per_s:.2f}",
                f"{r.deliveries_per_s:,.0f}",
                f"{r.latency_p50_ms:.1f}",
                f"{r.latency_p99_ms:.1f}",
                f"{r.gateway_cpu_per_publish_us:,.0f}",
                str(r.lost),
                str(r.errors),
            ]
        )
    header = [
        "",
        "publishes/s",
        "x client",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "CPU/publish us",
        "lost",
        "errors",
    ]
    return table(header, rows)


async def run(params: Params, root: Path) -> list[Result]:
    results = []
    for channel_label in CHANNELS:
        for mode in MODES:
            workdir = root / f"{mode.replace(' ', '-')}-{CHANNELS[channel_label].split(':')[0]}"
            workdir.mkdir()
            print(f"{mode}, {channel_label} ...", flush=True)
            results.append(await run_scenario(mode, channel_label, params, workdir))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--window", type=int, default=16, help="publications in flight")
    parser.add_argument("--batch", type=int, default=10, help="publishes per /api/batch request")
    parser.add_argument("--payload-bytes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/api.json"))
    args = parser.parse_args(argv)
    params = Params(args.subscribers, args.messages, args.window, args.batch, args.payload_bytes)
    root = Path(tempfile.mkdtemp(prefix="wirehub-bench-api-"))
    print(f"gateway logs under {root}", flush=True)
    sys.setswitchinterval(0.001)
    results = asyncio.run(run(params, root))
    print()
    print(report(results))
    for r in results:
        if r.others_busy_pct >= OTHERS_BUSY_PCT:
            print(
                f"warning: {r.scenario}: other processes used {r.others_busy_pct:.0f}% of a core; run again"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {"params": asdict(params), "scenarios": [asdict(r) for r in results]}
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in results if r.lost or r.errors]
    for r in failed:
        print(f"FAIL {r.scenario}: {r.lost} deliveries lost, {r.errors} publishes failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
