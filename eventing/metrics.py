"""Prometheus metrics, on a registry of our own (not the process-global one), so a
test can run several systems in one process and each gets its own numbers.

Counters are incremented where things happen; gauges that are a reading of live
state (backlog, in-flight, DLQ depth) are computed at scrape time by a collector, so
they can never drift from the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "eventing_events_received", "Events accepted by ingress", ["broker", "mode"], registry=r
        )
        self.rejected = Counter(
            "eventing_events_rejected",
            "Events refused by ingress",
            ["broker", "status"],
            registry=r,
        )
        self.dropped = Counter(
            "eventing_events_dropped",
            "Events not delivered to a trigger, by reason",
            ["broker", "trigger", "reason"],
            registry=r,
        )
        self.deliveries = Counter(
            "eventing_deliveries",
            "Delivery outcomes per trigger",
            ["trigger", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "eventing_delivery_attempts",
            "Delivery attempts by status",
            ["trigger", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "eventing_delivery_latency_seconds",
            "Arrival at ingress to successful delivery",
            ["trigger"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempt_duration = Histogram(
            "eventing_dispatch_duration_seconds",
            "Duration of one delivery attempt",
            ["trigger"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.replies = Counter(
            "eventing_replies", "Reply events put back into a broker", ["trigger"], registry=r
        )

    def add_live(
        self,
        name: str,
        doc: str,
        labels: list[str],
        read: Callable[[], Iterable[tuple[list[str], float]]],
        *,
        counter: bool = False,
    ) -> None:
        """Register a gauge (or a counter kept elsewhere) whose samples are read from
        live state at scrape time."""
        self.registry.register(_Live(name, doc, labels, read, counter))


class _Live(Collector):
    def __init__(
        self,
        name: str,
        doc: str,
        labels: list[str],
        read: Callable[[], Iterable[tuple[list[str], float]]],
        counter: bool,
    ) -> None:
        self._name, self._doc, self._labels, self._read = name, doc, labels, read
        self._family = CounterMetricFamily if counter else GaugeMetricFamily

    def collect(self) -> Iterable[Metric]:
        family = self._family(self._name, self._doc, labels=self._labels)
        for values, value in self._read():
            family.add_metric(values, value)
        yield family

    def describe(self) -> Iterable[Metric]:
        yield self._family(self._name, self._doc, labels=self._labels)
