"""``python -m bench.suite.profile [SCENARIO]``: one wirehub measurement under cProfile, and its hot spots.

Runs one scenario of the suite against one wirehub server started under cProfile, then prints the
functions that took the most time in the gateway (its own time, and with callees). Profiling
slows every Python call, which also changes how much the gateway batches under load: read the
shares of the time, and take the figures from the suite itself.

    .venv/bin/python -m bench.suite.profile fanout
    .venv/bin/python -m bench.suite.profile history --target wirehub-mongo --top 40
"""

from __future__ import annotations

import argparse
import asyncio
import io
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.suite import generator
from bench.suite.ports import PortAllocator
from bench.suite.scenarios import SCENARIOS_BY_NAME, Scenario
from bench.suite.servers import Target, WirehubServer


async def profile(scenario: Scenario, target: Target, workdir: Path, *, quick: bool) -> dict[str, Any]:
    server = WirehubServer(workdir, PortAllocator(), target.store, profile_path=workdir / "gateway.prof")
    await server.start()
    try:
        return await generator.run_generator(target, server, scenario.generator_options(quick=quick))
    finally:
        await server.stop()


def hot_spots(path: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out).strip_dirs()
    for order in ("tottime", "cumulative"):
        print(f"--- top {top} by {order}", file=out)
        stats.sort_stats(order).print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite.profile", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", nargs="?", default="fanout", choices=sorted(SCENARIOS_BY_NAME))
    parser.add_argument("--target", help="which wirehub server of the scenario (default: its first)")
    parser.add_argument("--quick", action="store_true", help="the scenario's small sizes")
    parser.add_argument("--top", type=int, default=25, help="functions to list per ordering")
    args = parser.parse_args(argv)
    scenario = SCENARIOS_BY_NAME[args.scenario]
    wirehubs = {t.key: t for t in scenario.targets if t.protocol == "wirehub"}
    target = wirehubs.get(args.target or next(iter(wirehubs)))
    if target is None:
        parser.error(f"--target must be one of {', '.join(wirehubs)}")
    generator.ensure_installed()
    workdir = Path(tempfile.mkdtemp(prefix="wirehub-profile-"))
    result = asyncio.run(profile(scenario, target, workdir, quick=args.quick))
    print(
        f"{scenario.name} on {target.label} under cProfile: lost {result.get('lost')},"
        f" server CPU per delivery {result.get('server_cpu_us_per_delivery')} µs,"
        f" problems {result.get('problems')}"
    )
    print(hot_spots(workdir / "gateway.prof", args.top))
    print(f"profile: {workdir / 'gateway.prof'} (python -m pstats to explore it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
