"""One measurement: a generator result for one server in one repetition, and what to read from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.suite.scenarios import Figure

NOISY_BUSY_PCT = 25.0
"""Other processes above this share of one core during a measured phase disturb its figures.
On a quiet machine the rest of the system (kernel threads, the loopback's soft interrupts that
no process is charged with) stays at a few %."""
NOISY_PEAK_PCT = 50.0
"""For latency percentiles: other processes above this in any 500 ms slice of the phase. A p99
over 10 s is the worst 100 ms of deliveries, so one short burst of other work can set it (a
burst shorter than about 250 ms stays under this in its slice: it goes unseen)."""
GENERATOR_SATURATED_PCT = 90.0
"""Above this the generator (one Node thread) may set the pace: its latencies include its own queueing."""


@dataclass(slots=True)
class Run:
    scenario: str
    target: str
    rep: int
    attempt: int
    result: dict[str, Any]
    kept: bool = True
    """False for an attempt that was noisy and measured again."""

    def value(self, figure: Figure) -> float | None:
        node: Any = self.result
        for part in figure.key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return float(node) if isinstance(node, int | float) else None

    @property
    def error(self) -> str | None:
        error = self.result.get("error")
        return str(error) if error is not None else None

    @property
    def lost(self) -> int:
        return int(self.result.get("lost", 0))

    @property
    def duplicates(self) -> int:
        return int(self.result.get("duplicates", 0))

    @property
    def problems(self) -> list[str]:
        found = self.result.get("problems", {})
        samples = [str(s) for s in found.get("samples", [])]
        return [self.error, *samples] if self.error else samples

    @property
    def problem_count(self) -> int:
        return int(self.result.get("problems", {}).get("count", 0)) + (1 if self.error else 0)

    @property
    def others_busy_pct(self) -> float:
        return float(self.result.get("others_busy_pct", 0.0))

    @property
    def generator_busy_pct(self) -> float:
        return float(self.result.get("generator_busy_pct", 0.0))

    @property
    def others_peak_pct(self) -> float:
        return float(self.result.get("others_peak_pct", 0.0))

    def noisy(self, *, burst_sensitive: bool) -> bool:
        """Other processes disturbed this run: on average, or in a burst where bursts matter."""
        return self.others_busy_pct > NOISY_BUSY_PCT or (
            burst_sensitive and self.others_peak_pct > NOISY_PEAK_PCT
        )

    @property
    def failed(self) -> bool:
        return self.lost > 0 or self.duplicates > 0 or self.problem_count > 0
