"""``docs/performance.png``: the headline ratios, one bar per scenario and baseline, and the targets."""

from __future__ import annotations

from pathlib import Path

from bench.suite.summary import Comparison, ScenarioSummary

GOOD, BAD, NEUTRAL, EXTRA = "#2e7d32", "#c62828", "#78909c", "#b0bec5"


def baseline_label(summary: ScenarioSummary, comparison: Comparison) -> str:
    return (comparison.extra_baseline or summary.scenario.baseline).label


def write_chart(summaries: list[ScenarioSummary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a file
    import matplotlib.pyplot as plt

    bars = [
        (f"{s.scenario.name}: {c.figure.label}\n{c.subject.label} / {baseline_label(s, c)}", c)
        for s in summaries
        for c in (*s.headlines, *s.beside)
        if c.ratio is not None
    ]
    fig, ax = plt.subplots(figsize=(9, 0.75 * len(bars) + 1.6))
    for y, (_, comparison) in enumerate(bars):
        assert comparison.ratio is not None
        met = comparison.meets_goal
        colour = EXTRA if comparison.extra_baseline else NEUTRAL if met is None else GOOD if met else BAD
        ax.barh(y, comparison.ratio, color=colour, height=0.6)
        ax.text(comparison.ratio * 1.03, y, f"{comparison.ratio:.2f}", va="center", fontsize=9)
        if comparison.goal is not None:
            ax.plot([comparison.goal] * 2, [y - 0.4, y + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(bars)), [label for label, _ in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (log scale): below 1 is cheaper or faster than the baseline")
    ax.set_title(
        "wirehub against its baselines, same run (black tick: the project's target; pale: a Node baseline)",
        fontsize=10,
    )
    ratios = [c.ratio for _, c in bars if c.ratio is not None]
    goals = [c.goal for _, c in bars if c.goal is not None]
    ax.set_xlim(min([*ratios, *goals, 1.0]) / 1.5, max([*ratios, *goals, 1.0]) * 1.6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
