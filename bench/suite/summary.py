"""Medians over the kept repetitions, ratios subject / baseline, losses, problems and noise.

The subjects' headline is also compared with each of a scenario's extra baselines (``beside``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from bench.suite.results import GENERATOR_SATURATED_PCT, Run
from bench.suite.scenarios import DELIVERIES_PER_S, Figure, Scenario
from bench.suite.servers import Target


@dataclass(frozen=True, slots=True)
class Comparison:
    figure: Figure
    subject: Target
    baseline_median: float | None
    subject_median: float | None
    goal: float | None
    """The project's target for the ratio (headline figures only)."""
    floor: float | None = None
    """Or an absolute target: the subject's median is at least this (headline figures only)."""
    extra_baseline: Target | None = None
    """The baseline, when it is one of the scenario's extra baselines rather than its own."""

    @property
    def ratio(self) -> float | None:
        if self.baseline_median is None or self.subject_median is None or self.baseline_median == 0:
            return None
        return self.subject_median / self.baseline_median

    @property
    def meets_goal(self) -> bool | None:
        if self.floor is not None:
            return None if self.subject_median is None else self.subject_median >= self.floor
        ratio = self.ratio
        return None if self.goal is None or ratio is None else ratio <= self.goal


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    scenario: Scenario
    comparisons: tuple[Comparison, ...]
    """Per subject: the headline figure first, then the details."""
    beside: tuple[Comparison, ...]
    """Per subject and extra baseline: the headline figure, with no target."""
    reps: int
    lost: dict[str, int]
    """Target key -> deliveries lost over the kept repetitions."""
    duplicates: dict[str, int]
    problems: dict[str, list[str]]
    """Target key -> the first few problems (error replies, failed connects, closes)."""
    remeasured: int
    """Repetitions measured again because other processes were busy."""
    noisy_kept: int
    """Kept repetitions in which other processes were busy all the same."""
    max_others_busy_pct: float
    max_others_peak_pct: float
    """The most other processes used in any 500 ms slice of a kept run."""
    max_generator_busy_pct: float
    deliveries_per_s: dict[str, float | None]
    """Target label -> median deliveries/s, to tell whether a fixed-rate run kept up."""

    @property
    def headlines(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.figure == self.scenario.headline)

    @property
    def generator_saturated(self) -> bool:
        return self.max_generator_busy_pct >= GENERATOR_SATURATED_PCT


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def _floor(scenario: Scenario, subject: Target) -> float | None:
    if scenario.floor is None or scenario.floor[0] != subject.key:
        return None
    return scenario.floor[1]


def summarize(scenario: Scenario, runs: list[Run]) -> ScenarioSummary:
    runs = [run for run in runs if run.scenario == scenario.name]
    kept = [run for run in runs if run.kept]

    def median_of(target: Target, figure: Figure) -> float | None:
        return median([run.value(figure) for run in kept if run.target == target.key])

    comparisons = tuple(
        Comparison(
            figure=figure,
            subject=subject,
            baseline_median=median_of(scenario.baseline, figure),
            subject_median=median_of(subject, figure),
            goal=scenario.goal if figure == scenario.headline else None,
            floor=_floor(scenario, subject) if figure == scenario.headline else None,
        )
        for subject in scenario.subjects
        for figure in scenario.figures
    )
    beside = tuple(
        Comparison(
            figure=scenario.headline,
            subject=subject,
            baseline_median=median_of(extra, scenario.headline),
            subject_median=median_of(subject, scenario.headline),
            goal=None,
            extra_baseline=extra,
        )
        for subject in scenario.subjects
        for extra in scenario.extra_baselines
    )
    keys = [target.key for target in scenario.targets]
    reps_kept = {run.rep for run in kept}
    noisy_reps = {run.rep for run in kept if run.noisy(burst_sensitive=scenario.burst_sensitive)}
    return ScenarioSummary(
        scenario=scenario,
        comparisons=comparisons,
        beside=beside,
        reps=len(reps_kept),
        lost={key: sum(run.lost for run in kept if run.target == key) for key in keys},
        duplicates={key: sum(run.duplicates for run in kept if run.target == key) for key in keys},
        problems={key: [p for run in kept if run.target == key for p in run.problems][:5] for key in keys},
        remeasured=len({run.rep for run in runs if not run.kept}),
        noisy_kept=len(noisy_reps),
        max_others_busy_pct=max((run.others_busy_pct for run in kept), default=0.0),
        max_others_peak_pct=max((run.others_peak_pct for run in kept), default=0.0),
        max_generator_busy_pct=max((run.generator_busy_pct for run in kept), default=0.0),
        deliveries_per_s={target.label: median_of(target, DELIVERIES_PER_S) for target in scenario.targets},
    )
