"""What a node counts, and its ``/metrics`` page in Prometheus' text format.

Counting is plain integer arithmetic on the event loop, at the place each thing happens: once per
command, once per publication, once per fan-out (``Hub.deliveries`` adds the subscriber count of
each fan-out; nothing is done per subscriber). ``prometheus-client`` is used only when a scrape
comes: the collector reads the counts and the gauges (connections, subscriptions, channels) then,
so the hot path never takes its locks or looks up its label children.

Label values are bounded: commands by the methods the protocol knows, error codes by the codes
wirehub sends, close codes by those wirehub sends plus the WebSocket codes a client may send
(1000 to 1015; any other client code counts as ``other``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from wirehub.version import __version__

if TYPE_CHECKING:
    from wirehub.server.node import Node

__all__ = ["CONTENT_TYPE", "Histogram", "MetricsPage", "NodeMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""From half a millisecond (a local Redis, SQLite in the page cache) to a command timeout."""

CLIENT_CLOSE_CODES = range(1000, 1016)


class Histogram:
    """A latency histogram: one bisect and two additions per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        """Per bucket, not cumulative; the last one is above every bound."""
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket (Prometheus' "le").
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", running + self.counts[-1]))
        return buckets


class NodeMetrics:
    """The counts one node keeps; the node, its connections and its pipeline add to them."""

    __slots__ = (
        "api_publications",
        "broker_publish",
        "client_publications",
        "command_errors",
        "commands_ok",
        "connects_refused",
        "disconnects",
        "store_append",
    )

    def __init__(self) -> None:
        self.commands_ok: dict[str, int] = {}
        self.command_errors: dict[tuple[str, int], int] = {}
        self.client_publications = 0
        self.api_publications = 0
        self.disconnects: dict[str, int] = {}
        self.connects_refused: dict[int, int] = {}
        self.broker_publish = Histogram()
        self.store_append = Histogram()

    def command_done(self, method: str) -> None:
        method = method or "unknown"
        self.commands_ok[method] = self.commands_ok.get(method, 0) + 1
        if method == "publish":
            self.client_publications += 1

    def command_failed(self, method: str, code: int) -> None:
        key = (method or "unknown", code)
        self.command_errors[key] = self.command_errors.get(key, 0) + 1

    def connect_refused(self, code: int) -> None:
        self.connects_refused[code] = self.connects_refused.get(code, 0) + 1

    def disconnected(self, code: int, *, by_server: bool) -> None:
        label = str(code) if by_server or code in CLIENT_CLOSE_CODES else "other"
        self.disconnects[label] = self.disconnects.get(label, 0) + 1


class _NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node, counts = self._node, self._node.metrics
        yield InfoMetricFamily("wirehub_build", "The running wirehub.", value={"version": __version__})
        yield GaugeMetricFamily("wirehub_connections", "Open client connections.", value=node.client_count)
        yield GaugeMetricFamily(
            "wirehub_subscriptions",
            "Live subscriptions of this node's connections.",
            value=node.hub.subscription_total,
        )
        yield GaugeMetricFamily(
            "wirehub_channels", "Channels with subscribers on this node.", value=node.hub.channel_count
        )

        commands = CounterMetricFamily(
            "wirehub_commands",
            "Client commands answered, by result (ok or the error code).",
            labels=["method", "result"],
        )
        for method, count in sorted(counts.commands_ok.items()):
            commands.add_metric([method, "ok"], count)
        for (method, code), count in sorted(counts.command_errors.items()):
            commands.add_metric([method, str(code)], count)
        yield commands

        publications = CounterMetricFamily(
            "wirehub_publications", "Publications accepted, by who published.", labels=["source"]
        )
        publications.add_metric(["client"], counts.client_publications)
        publications.add_metric(["api"], counts.api_publications)
        yield publications

        yield CounterMetricFamily(
            "wirehub_deliveries",
            "Publications and join/leave events written to subscribers (one per subscriber).",
            value=node.hub.deliveries,
        )

        disconnects = CounterMetricFamily(
            "wirehub_disconnects", "Connections ended, by close code.", labels=["code"]
        )
        for label, count in sorted(counts.disconnects.items()):
            disconnects.add_metric([label], count)
        yield disconnects

        refused = CounterMetricFamily(
            "wirehub_connects_refused",
            "Connect commands refused (bad or expired token, limits...), by code.",
            labels=["code"],
        )
        for code, count in sorted(counts.connects_refused.items()):
            refused.add_metric([str(code)], count)
        yield refused

        timings = (
            ("wirehub_broker_publish_seconds", "Handing a publication to the broker.", counts.broker_publish),
            ("wirehub_store_append_seconds", "Storing one batch of publications.", counts.store_append),
        )
        for name, help_text, histogram in timings:
            yield HistogramMetricFamily(
                name, help_text, buckets=histogram.cumulative(), sum_value=histogram.total
            )


class MetricsPage:
    """A node's ``/metrics``: its own counts and the process' (CPU, memory, open files)."""

    def __init__(self, node: Node) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_NodeCollector(node))
        ProcessCollector(registry=self._registry)

    def render(self) -> bytes:
        return generate_latest(self._registry)
