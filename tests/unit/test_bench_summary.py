"""The benchmark suite's verdicts: a ratio target, or an absolute floor for one subject."""

from __future__ import annotations

from bench.suite.report import goal_cell
from bench.suite.scenarios import CPU_PER_DELIVERY, PUBLISHES_PER_S, SCENARIOS_BY_NAME, WIREHUB
from bench.suite.summary import Comparison


def test_a_ratio_target_is_met_at_or_below_it() -> None:
    def cheaper(subject: float) -> Comparison:
        return Comparison(CPU_PER_DELIVERY, WIREHUB, 10.0, subject, goal=0.4)

    assert cheaper(4.0).meets_goal is True
    assert cheaper(4.1).meets_goal is False
    assert goal_cell(cheaper(4.1)) == "≤ 0.4: **not met**"


def test_a_floor_is_met_at_or_above_it_whatever_the_ratio() -> None:
    def publishes(subject: float | None) -> Comparison:
        return Comparison(PUBLISHES_PER_S, WIREHUB, 20_000.0, subject, goal=None, floor=5000)

    assert publishes(5000).meets_goal is True
    assert publishes(4999).meets_goal is False
    assert publishes(None).meets_goal is None
    assert goal_cell(publishes(9000)) == "≥ 5,000/s: met"


def test_the_burst_floor_names_one_of_its_subjects() -> None:
    burst = SCENARIOS_BY_NAME["burst"]
    assert burst.floor is not None
    assert burst.floor[0] in {subject.key for subject in burst.subjects}
