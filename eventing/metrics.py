"""Prometheus metrics, on a registry of our own (not the process-global one), so a
test can run several systems in one process and each gets its own numbers.

Rare events are counted with prometheus_client counters where they happen. What
happens per delivery is counted in plain integers and :class:`LocalHistogram` on the
dispatcher (single-threaded, no lock: prometheus_client's objects take a lock and a
label lookup per call, a measurable share of the hot path) and read at scrape time,
like the gauges of live state (backlog, in-flight, DLQ depth), so none can drift.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
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
        self.webhook_refused = Counter(
            "eventing_webhook_requests_refused",
            "Webhook requests the ingress refused before the source saw them (413, 408)",
            ["source", "status"],
            registry=r,
        )
        self.replies = Counter(
            "eventing_replies", "Reply events put back into a broker", ["trigger"], registry=r
        )

    def add_collector(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Register metric families produced at scrape time by ``collect``."""
        self.registry.register(_Families(collect))

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


class _Families(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        yield from self._collect()


class LocalHistogram:
    """A histogram for one writer on the event loop: ``observe`` is a bisect and two
    additions. Read at scrape time into a Prometheus histogram family."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs as Prometheus wants them, +Inf last."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            out.append((repr(float(bound)), float(total)))
        out.append(("+Inf", float(total + self.counts[-1])))
        return out


def histogram_family(
    name: str, doc: str, labels: list[str], read: Iterable[tuple[list[str], LocalHistogram]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, histogram in read:
        family.add_metric(values, histogram.buckets(), histogram.sum)
    return family
