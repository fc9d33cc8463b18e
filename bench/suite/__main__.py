"""``python -m bench.suite``: measure wirehub beside the bare baselines and write docs/performance.md.

Run from the repository root with the dev virtualenv::

    .venv/bin/python -m bench.suite                       # every scenario, 3 repetitions (~15 min)
    .venv/bin/python -m bench.suite --scenarios fanout,rooms --reps 5
    .venv/bin/python -m bench.suite --quick               # small sizes, 1 repetition: checks the suite

It exits with 1 if any run lost or duplicated a delivery or hit a problem (an error reply, a
failed connection, a timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.suite import generator, machine
from bench.suite.chart import write_chart
from bench.suite.ports import PortAllocator
from bench.suite.report import Context, render
from bench.suite.results import Run
from bench.suite.runner import Plan, run_scenario
from bench.suite.scenarios import SCENARIOS, SCENARIOS_BY_NAME, Scenario
from bench.suite.summary import ScenarioSummary, summarize

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenarios",
        default=",".join(s.name for s in SCENARIOS),
        help="comma-separated, from: " + ", ".join(s.name for s in SCENARIOS),
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of every scenario (medians over them)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, 1 repetition, no docs: checks the suite"
    )
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=1,
        help="how often a repetition disturbed by other processes is redone",
    )
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="where performance.md and .png go")
    parser.add_argument("--no-docs", action="store_true", help="write only the JSON results")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench/results/suite.json", help="raw results (JSON)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios.split(",") if name not in SCENARIOS_BY_NAME]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    if args.reps < 1 or args.noisy_retries < 0:
        parser.error("--reps must be at least 1 and --noisy-retries not negative")
    if args.quick:
        args.reps = 1
        args.no_docs = True
    return args


async def run_all(scenarios: list[Scenario], plan: Plan) -> list[Run]:
    ports = PortAllocator()
    runs: list[Run] = []
    for i, scenario in enumerate(scenarios, 1):
        print(f"[{i}/{len(scenarios)}] {scenario.name}: {scenario.title}", flush=True)
        runs += await run_scenario(scenario, plan, ports, lambda line: print(line, flush=True))
    return runs


def console_table(summaries: list[ScenarioSummary]) -> str:
    lines = []
    for s in summaries:
        for c in s.headlines:
            ratio = "n/a" if c.ratio is None else f"{c.ratio:.2f}"
            verdict = "met" if c.meets_goal else "NOT met"
            goal = "" if c.goal is None else f"  (target <= {c.goal:g}: {verdict})"
            if c.floor is not None:
                goal = f"  ({c.subject_median or 0:,.0f}{c.figure.unit}, target >= {c.floor:,.0f}: {verdict})"
            lost = sum(s.lost[t.key] for t in s.scenario.compared)
            lines.append(
                f"{s.scenario.name:<11} {c.subject.label:<38} {c.figure.label} ratio {ratio}{goal},"
                f" lost {lost}"
            )
        for c in s.beside:
            if c.extra_baseline is not None and c.baseline_median is not None:
                ratio = "n/a" if c.ratio is None else f"{c.ratio:.2f}"
                label = f"{c.subject.label} / {c.extra_baseline.label}"
                lines.append(
                    f"{s.scenario.name:<11} {label:<38} {c.figure.label} ratio {ratio},"
                    f" lost {s.lost[c.extra_baseline.key]}"
                )
    return "\n".join(lines)


def unavailable_targets(scenarios: list[Scenario]) -> frozenset[str]:
    """Keys of the servers that cannot run here; a note for each."""
    skip = set()
    for target in dict.fromkeys(t for scenario in scenarios for t in scenario.targets):
        reason = target.unavailable()
        if reason is not None:
            print(f"note: {target.label} left out: {reason}", flush=True)
            skip.add(target.key)
    return frozenset(skip)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = [SCENARIOS_BY_NAME[name] for name in args.scenarios.split(",")]
    generator.ensure_installed()
    workroot = Path(tempfile.mkdtemp(prefix="wirehub-suite-"))
    print(f"server logs and databases under {workroot}", flush=True)
    plan = Plan(
        reps=args.reps,
        quick=args.quick,
        noisy_retries=args.noisy_retries,
        workroot=workroot,
        skip=unavailable_targets(scenarios),
    )
    measured_on = machine.describe(generator.versions())  # before the run: the commit measured

    started = time.monotonic()
    runs = asyncio.run(run_all(scenarios, plan))
    duration_min = (time.monotonic() - started) / 60
    summaries = [summarize(scenario, runs) for scenario in scenarios]
    command = " ".join(
        ["python -m bench.suite", *map(shlex.quote, argv if argv is not None else sys.argv[1:])]
    )
    context = Context(
        command=command,
        date=time.strftime("%Y-%m-%d"),
        duration_min=duration_min,
        reps=args.reps,
        machine=measured_on,
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "command": command,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": context.machine,
        "quick": args.quick,
        "runs": [asdict(run) for run in runs],
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"\n{console_table(summaries)}\n\nraw results: {args.out}")
    if not args.no_docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        (args.docs / "performance.md").write_text(render(summaries, context), encoding="utf-8")
        write_chart(summaries, args.docs / "performance.png")
        print(f"report: {args.docs / 'performance.md'} and performance.png")

    failed = [run for run in runs if run.kept and run.failed]
    for run in failed:
        print(
            f"FAIL {run.scenario} {run.target} rep {run.rep + 1}: lost {run.lost},"
            f" duplicates {run.duplicates}, problems {run.problems[:3]}",
            file=sys.stderr,
        )
    print(f"took {duration_min:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
