"""Runs the scenarios: every server of a scenario, in the same repetition, with the same generator.

Every measurement gets a fresh server process, so no run inherits another's memory, queues or
database. The servers' order alternates between repetitions, so that a drift in the machine's
state (another job starting, the CPU warming up) does not always favour the same server. A
repetition in which other processes were busy (``Run.noisy``) is measured again, up to
``noisy_retries`` times; the discarded attempts stay in the results, marked ``kept: false``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.suite.generator import run_generator
from bench.suite.ports import PortAllocator
from bench.suite.results import Run
from bench.suite.scenarios import Scenario
from bench.suite.servers import Target


@dataclass(frozen=True, slots=True)
class Plan:
    reps: int
    quick: bool
    noisy_retries: int
    workroot: Path
    skip: frozenset[str] = frozenset()
    """Keys of targets that cannot run here (``Target.unavailable``): left out of every scenario."""


async def measure(
    scenario: Scenario, target: Target, rep: int, attempt: int, plan: Plan, ports: PortAllocator
) -> Run:
    workdir = plan.workroot / scenario.name / f"rep{rep}-attempt{attempt}-{target.key}"
    workdir.mkdir(parents=True)
    server = target.server(workdir, ports)
    await server.start()
    try:
        result = await run_generator(target, server, scenario.generator_options(quick=plan.quick))
    finally:
        await server.stop()
    return Run(scenario.name, target.key, rep, attempt, result)


def describe(scenario: Scenario, run: Run) -> str:
    value = run.value(scenario.headline)
    shown = "n/a" if value is None else f"{value:.{scenario.headline.digits}f} {scenario.headline.unit}"
    text = f"{run.target}: {scenario.headline.label} {shown}, lost {run.lost}"
    text += f", others busy {run.others_busy_pct:.0f}% (peak {run.others_peak_pct:.0f}%)"
    text += f", generator busy {run.generator_busy_pct:.0f}%"
    if run.problem_count:
        text += f", {run.problem_count} problems: {run.problems[:2]}"
    return text


async def run_scenario(
    scenario: Scenario, plan: Plan, ports: PortAllocator, log: Callable[[str], None]
) -> list[Run]:
    runs: list[Run] = []
    targets = tuple(target for target in scenario.targets if target.key not in plan.skip)
    for rep in range(plan.reps):
        order = targets if rep % 2 == 0 else tuple(reversed(targets))
        for attempt in range(plan.noisy_retries + 1):
            batch = []
            for target in order:
                run = await measure(scenario, target, rep, attempt, plan, ports)
                log(f"  [{scenario.name} {rep + 1}/{plan.reps}] {describe(scenario, run)}")
                batch.append(run)
            runs += batch
            if not any(run.noisy(burst_sensitive=scenario.burst_sensitive) for run in batch):
                break
            if attempt < plan.noisy_retries:
                for run in batch:
                    run.kept = False
                log(f"  [{scenario.name} {rep + 1}/{plan.reps}] other processes were busy: measuring again")
    return runs
