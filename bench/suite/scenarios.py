"""The suite's scenarios: what the generator runs, against which servers, and which figures count.

Each scenario compares ``subjects`` with a ``baseline`` measured in the same run: wirehub with
the bare ``websockets`` server, or (``history``) wirehub with a store against wirehub without.
The scenarios against bare websockets also measure ``extra_baselines``, the Node ``ws`` and
Socket.IO room servers: reported beside, while the project's targets stay ratios to ``baseline``.
The sizes are the project's reference sizes; ``--quick`` shrinks them to check the suite itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.suite.servers import Store, Target

BARE = Target("bare", "bare websockets", protocol="bare")
NODE_WS = Target("node-ws", "Node ws", protocol="bare")
SOCKETIO = Target("socketio", "Socket.IO", protocol="socketio")
NODE_BASELINES = (NODE_WS, SOCKETIO)
WIREHUB = Target("wirehub", "wirehub", protocol="wirehub")
WIREHUB_SQLITE_HISTORY = Target(
    "wirehub-sqlite", "wirehub, history on SQLite", "wirehub", "hist", Store.SQLITE
)
WIREHUB_MONGO_HISTORY = Target(
    "wirehub-mongo", "wirehub, history on MongoDB stand-in", "wirehub", "hist", Store.MONGO
)


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    """Dotted path into the generator's result, e.g. ``latency.p99_ms``."""
    label: str
    unit: str
    digits: int = 1


CPU_PER_DELIVERY = Figure("server_cpu_us_per_delivery", "server CPU per delivery", "µs", 2)
DELIVERIES_PER_S = Figure("deliveries_per_s", "deliveries", "/s", 0)
PUBLISHES_PER_S = Figure("deliveries_per_s", "publishes", "/s", 0)
"""With one member in one room, every delivery is the publisher's own publication coming back."""
P50 = Figure("latency.p50_ms", "latency p50", "ms")
P99 = Figure("latency.p99_ms", "latency p99", "ms")
SERVER_BUSY = Figure("server_busy_pct", "server CPU busy", "% of a core", 0)
"""Near 100 the server is saturated: in the fixed-rate scenarios, it no longer keeps up."""
STORE_BUSY = Figure("aux_busy_pct", "store server CPU busy", "% of a core", 0)
"""The MongoDB stand-in's own CPU (SQLite runs inside the gateway, so it is in the server's)."""
KIB_PER_CONNECTION = Figure("kib_per_connection", "server RSS per connection", "KiB", 2)
CPU_PER_CONNECTION = Figure("server_cpu_us_per_connection", "server CPU per connect + subscribe", "µs", 0)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    options: dict[str, str | float]
    """Generator options (``bench/node/lib/args.js``) at the default sizes."""
    quick: dict[str, str | float]
    """Overrides for ``--quick``."""
    headline: Figure
    details: tuple[Figure, ...]
    baseline: Target = BARE
    subjects: tuple[Target, ...] = (WIREHUB,)
    goal: float | None = None
    """The project's target for subject / baseline of the headline figure (at most this)."""
    floor: tuple[str, float] | None = None
    """An absolute target instead: the headline of this subject (its key) is at least this."""
    extra_baselines: tuple[Target, ...] = ()
    """Further baselines measured in the same repetitions; the subjects' headline is reported
    against each of them too, with no target."""

    @property
    def burst_sensitive(self) -> bool:
        """A latency percentile as headline: a short burst of other work can set it."""
        return self.headline.key.startswith("latency.")

    @property
    def compared(self) -> tuple[Target, ...]:
        """The baseline and the subjects: what the ratios and targets are about."""
        return (self.baseline, *self.subjects)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every server the scenario measures."""
        return (*self.compared, *self.extra_baselines)

    @property
    def figures(self) -> tuple[Figure, ...]:
        return (self.headline, *self.details)

    def generator_options(self, *, quick: bool) -> dict[str, str | float]:
        return self.options | self.quick if quick else dict(self.options)


FANOUT_OPTIONS: dict[str, str | float] = {
    "scenario": "fanout", "subscribers": 1000, "messages": 500, "window": 4, "duration-s": 30,
}  # fmt: skip
FANOUT_QUICK: dict[str, str | float] = {"subscribers": 200, "messages": 100}

SCENARIOS = (
    Scenario(
        "fanout",
        "fan-out, 1 publisher → 1,000 subscribers, closed loop (window 4)",
        FANOUT_OPTIONS,
        FANOUT_QUICK,
        headline=CPU_PER_DELIVERY,
        details=(DELIVERIES_PER_S, P50, P99, SERVER_BUSY),
        goal=0.4,
        extra_baselines=NODE_BASELINES,
    ),
    Scenario(
        "latency-40",
        "fan-out at 40 msg/s x 1,000 subscribers",
        {"scenario": "fanout", "subscribers": 1000, "messages": 400, "rate": 40},
        {"subscribers": 200, "messages": 80},
        headline=P99,
        details=(P50, DELIVERIES_PER_S, CPU_PER_DELIVERY, SERVER_BUSY),
        goal=1.1,
        extra_baselines=NODE_BASELINES,
    ),
    Scenario(
        "latency-5",
        "fan-out at 5 msg/s x 1,000 subscribers",
        {"scenario": "fanout", "subscribers": 1000, "messages": 50, "rate": 5},
        {"subscribers": 200, "messages": 15},
        headline=P99,
        details=(P50, DELIVERIES_PER_S, CPU_PER_DELIVERY, SERVER_BUSY),
        extra_baselines=NODE_BASELINES,
    ),
    Scenario(
        "rooms",
        "500 rooms x 4 members, every member publishing, closed loop (window 1)",
        {"scenario": "rooms", "rooms": 500, "members": 4, "window": 1, "duration-s": 4},
        {"rooms": 100, "duration-s": 2},
        headline=CPU_PER_DELIVERY,
        details=(DELIVERIES_PER_S, P50, P99, SERVER_BUSY),
        goal=0.8,
        extra_baselines=NODE_BASELINES,
    ),
    Scenario(
        "idle",
        "5,000 idle connections, each subscribed to its own channel",
        {"scenario": "idle", "connections": 5000, "settle-s": 2},
        {"connections": 1000, "settle-s": 1},
        headline=KIB_PER_CONNECTION,
        details=(CPU_PER_CONNECTION,),
        goal=1.1,
        extra_baselines=NODE_BASELINES,
    ),
    Scenario(
        "history",
        "fan-out as in `fanout`, into a channel with history (100 publications)",
        FANOUT_OPTIONS,
        FANOUT_QUICK,
        headline=CPU_PER_DELIVERY,
        details=(DELIVERIES_PER_S, P50, P99, SERVER_BUSY, STORE_BUSY),
        baseline=WIREHUB,
        subjects=(WIREHUB_SQLITE_HISTORY, WIREHUB_MONGO_HISTORY),
    ),
    Scenario(
        "burst",
        "one connection pipelining publishes into its own channel (64 in flight)",
        {"scenario": "rooms", "rooms": 1, "members": 1, "window": 64, "duration-s": 4},
        {"duration-s": 2},
        headline=PUBLISHES_PER_S,
        details=(P50, P99, SERVER_BUSY, STORE_BUSY),
        baseline=WIREHUB,
        subjects=(WIREHUB_SQLITE_HISTORY, WIREHUB_MONGO_HISTORY),
        floor=(WIREHUB_SQLITE_HISTORY.key, 5000),
    ),
)
SCENARIOS_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
