"""``docs/performance.md``: the tables of medians and ratios, and how to read them."""

from __future__ import annotations

from dataclasses import dataclass

from bench.suite.results import GENERATOR_SATURATED_PCT, NOISY_BUSY_PCT, NOISY_PEAK_PCT
from bench.suite.summary import Comparison, ScenarioSummary

FELL_BEHIND = 0.97
"""A fixed-rate run that delivered less than this share of the offered load did not keep up."""


@dataclass(frozen=True, slots=True)
class Context:
    command: str
    date: str
    duration_min: float
    reps: int
    machine: dict[str, str]


def number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def goal_cell(comparison: Comparison) -> str:
    verdict = {True: "met", False: "**not met**", None: "n/a"}[comparison.meets_goal]
    if comparison.floor is not None:
        return f"≥ {comparison.floor:,.0f}{comparison.figure.unit}: {verdict}"
    if comparison.goal is None:
        return ""
    return f"≤ {comparison.goal:g}: {verdict}"


def losses(summary: ScenarioSummary) -> str:
    """``baseline / subject…`` lost deliveries, with duplicates if there were any."""
    cells = []
    for target in summary.scenario.compared:
        cell = str(summary.lost[target.key])
        if summary.duplicates[target.key]:
            cell += f" (+{summary.duplicates[target.key]} dup)"
        cells.append(cell)
    return " / ".join(cells)


def comparison_rows(summary: ScenarioSummary, *, with_server: bool) -> list[str]:
    rows = []
    for i, c in enumerate(summary.comparisons):
        headline = c.figure == summary.scenario.headline
        first = i == 0
        unit = c.figure.unit if c.figure.unit.startswith("/") else f" ({c.figure.unit})"
        label = f"{c.figure.label}{unit}"
        ratio = number(c.ratio, 2)
        rows.append(
            "| "
            + " | ".join(
                [
                    f"`{summary.scenario.name}`: {summary.scenario.title}" if first else "",
                    *([c.subject.label] if with_server else []),
                    f"**{label}**" if headline else label,
                    number(c.baseline_median, c.figure.digits),
                    number(c.subject_median, c.figure.digits),
                    f"**{ratio}**" if headline else ratio,
                    goal_cell(c),
                    losses(summary) if first else "",
                ]
            )
            + " |"
        )
    return rows


def comparison_table(summaries: list[ScenarioSummary], baseline: str, subject: str) -> list[str]:
    """One row per figure; a *server* column when a scenario has several subjects."""
    with_server = any(len(s.scenario.subjects) > 1 for s in summaries)
    server = " server |" if with_server else ""
    lines = [
        f"| scenario |{server} figure | {baseline} | {subject} | ratio | target"
        " | lost (baseline / each subject) |",
        "|---|" + ("---|" if with_server else "") + "---|---:|---:|---:|---|---|",
    ]
    for summary in summaries:
        lines += comparison_rows(summary, with_server=with_server)
    return lines


def beside_table(summaries: list[ScenarioSummary]) -> list[str]:
    """The headline of each scenario on every server: its baseline, the extra baselines, the subject."""
    extras = list(dict.fromkeys(t for s in summaries for t in s.scenario.extra_baselines))
    baseline = summaries[0].scenario.baseline.label
    lines = [
        f"| scenario | figure | {baseline} | "
        + " | ".join(t.label for t in extras)
        + " | wirehub | "
        + " | ".join(f"wirehub ÷ {t.label}" for t in extras)
        + " | lost ("
        + " / ".join(t.label for t in extras)
        + ") |",
        "|---|---|" + "---:|" * (2 + 2 * len(extras)) + "---|",
    ]
    for s in summaries:
        own = {c.subject.key: c for c in s.headlines}
        for subject in s.scenario.subjects:
            by_extra = {c.extra_baseline: c for c in s.beside if c.subject == subject}
            figure = s.scenario.headline
            unit = figure.unit if figure.unit.startswith("/") else f" ({figure.unit})"
            digits = figure.digits
            cells = [
                f"`{s.scenario.name}`",
                f"{figure.label}{unit}",
                number(own[subject.key].baseline_median, digits),
                *(number(by_extra[t].baseline_median if t in by_extra else None, digits) for t in extras),
                number(own[subject.key].subject_median, digits),
                *(f"**{number(by_extra[t].ratio if t in by_extra else None, 2)}**" for t in extras),
                " / ".join(str(s.lost.get(t.key, 0)) for t in extras),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def noise_table(summaries: list[ScenarioSummary]) -> list[str]:
    lines = [
        "| scenario | repetitions | measured again (noisy) | kept although noisy"
        " | other processes, max | in a 500 ms slice, max | generator, max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| `{s.scenario.name}` | {s.reps} | {s.remeasured} | {s.noisy_kept} "
            f"| {s.max_others_busy_pct:.0f} % | {s.max_others_peak_pct:.0f} %"
            f" | {s.max_generator_busy_pct:.0f} % |"
        )
    return lines


def problem_lines(summaries: list[ScenarioSummary]) -> list[str]:
    lines = []
    for s in summaries:
        for target in s.scenario.targets:
            if s.problems[target.key]:
                lines.append(f"* `{s.scenario.name}`, {target.label}: " + "; ".join(s.problems[target.key]))
    return lines


def saturation_lines(summaries: list[ScenarioSummary]) -> list[str]:
    """Fixed-rate scenarios in which a server delivered less than was offered: it fell behind."""
    lines = []
    for s in summaries:
        rate, subscribers = s.scenario.options.get("rate"), s.scenario.options.get("subscribers")
        if not isinstance(rate, int | float) or not isinstance(subscribers, int | float):
            continue
        offered = rate * subscribers
        for target, delivered in s.deliveries_per_s.items():
            if delivered is not None and delivered < FELL_BEHIND * offered:
                lines.append(
                    f"* `{s.scenario.name}`: {target} did not keep up with the {offered:,.0f} deliveries/s"
                    f" offered (it delivered {delivered:,.0f}/s): its queues, and so its latencies, grew"
                    " for as long as the phase lasted."
                )
    return lines


def render(summaries: list[ScenarioSummary], context: Context) -> str:
    against_bare = [s for s in summaries if s.scenario.baseline.key == "bare"]
    against_wirehub = [s for s in summaries if s.scenario.baseline.key == "wirehub"]
    with_extras = [s for s in summaries if any(c.baseline_median is not None for c in s.beside)]
    out = [
        "# Performance",
        "",
        "wirehub beside a bare `websockets` broadcast server and two Node room servers (`ws` and",
        "Socket.IO), driven by the same load generator in the",
        f"same run. Written by `{context.command}` on {context.date} ({context.reps} repetitions,",
        f"{context.duration_min:.0f} minutes); do not edit by hand: run the suite again.",
        "How the suite works and what each figure means: `bench/README.md`, section *The benchmark suite*.",
        "",
        "![Headline ratios against the baselines](performance.png)",
        "",
        "## wirehub against bare websockets",
        "",
        "Medians over the repetitions. *ratio* = wirehub ÷ bare websockets: below 1, wirehub needs less",
        "(CPU, memory) or is faster (latency) than the baseline; *target* is the project's aim for the",
        "ratio of the headline figure (bold).",
        "",
        *comparison_table(against_bare, "bare websockets", "wirehub"),
    ]
    if with_extras:
        extras = " and ".join(dict.fromkeys(t.label for s in with_extras for t in s.scenario.extra_baselines))
        out += [
            "",
            f"## wirehub against {extras}",
            "",
            "The headline figures again, with the Node baselines measured in the same repetitions:",
            "rooms on the npm `ws` package (the bare server's protocol) and on Socket.IO 4 (WebSocket",
            "transport only). *wirehub ÷ X* reads as the ratio above; the project sets no target",
            "against them. What each one does: `bench/README.md`, section *The Node baselines*.",
            "",
            *beside_table(with_extras),
        ]
    saturated = saturation_lines(summaries)
    if saturated:
        out += ["", *saturated]
    if against_wirehub:
        out += [
            "",
            "## What history costs",
            "",
            "The bare server has no store: here the baseline is wirehub's pure fan-out in the same run, and",
            "*ratio* = with history ÷ without.",
            "",
            *comparison_table(against_wirehub, "wirehub, no history", "with history"),
        ]
    problems = problem_lines(summaries)
    out += [
        "",
        "## Losses and problems",
        "",
        "Every delivery is counted per subscriber and sequence number; *lost* is what never arrived",
        "(after a drain of the messages in flight), *dup* what arrived twice.",
        "",
        *(problems or ["No losses, duplicates, error replies or failed connections."]),
        "",
        "## Noise",
        "",
        "Other processes are everything but the server, its store and the generator (`/proc`), in %",
        f"of one core, over each measured phase. A repetition above {NOISY_BUSY_PCT:.0f} % is measured again",
        f"(in the latency scenarios also one above {NOISY_PEAK_PCT:.0f} % in any 500 ms slice: a burst",
        "that short sets a p99); one still noisy after the retries is kept and counted here;",
        f"a generator near {GENERATOR_SATURATED_PCT:.0f} % of its one thread may itself set the pace.",
        "",
        *noise_table(summaries),
        "",
        "## Machine and versions",
        "",
        *(f"* {name}: {value}" for name, value in context.machine.items()),
        "",
        "## How to read it",
        "",
        "* Compare **ratios**, not absolute figures: the machine is small and shared, and both servers were",
        "  measured under the same conditions minutes apart. Between whole runs of the suite a CPU or",
        "  memory ratio moved by up to about 15 %, latency ratios far more; smaller differences are noise.",
        "* **CPU per delivery** is the server's own user + system time (`/proc/PID/stat`) over the measured",
        "  phase ÷ the deliveries in it: the generator's cost is not in it. It falls when a server writes",
        "  several messages per frame or per system call, so it rewards batching.",
        "* **Latency** is receive time - send time on the generator's one clock. In the closed-loop",
        "  scenarios it is mostly queueing (the window keeps the servers saturated); the fixed-rate",
        "  scenarios (`latency-40`, `latency-5`) measure the delivery path itself.",
        "* **RSS per connection** is the server's VmRSS growth over 5,000 idle connections on a fresh",
        "  process ÷ 5,000.",
        "* With 2 cores, server and generator each have about one; the fan-out scenarios keep the server",
        "  near 100 % of its core, so throughput figures are of the whole machine, not of the server alone.",
        "",
    ]
    return "\n".join(out)
