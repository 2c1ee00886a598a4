"""What the autoscaler knows about one workload at one instant.

Why a separate value: the decision is a pure function of (spec, observations, time,
state), so everything measured must be in here and nothing else may be read. The
runtime builds it from the broker and the replica runtime (see
:mod:`eventing.autoscaler.measure`), the simulator builds it the same way, and tests
write it by hand.

External metrics (a RabbitMQ queue depth, a Kafka consumer lag) enter through
:class:`MetricSource`, shaped like KEDA's ``GetMetricsAndActivity``: one probe returns
both the value and whether the source counts as active, so the two can never come from
different reads. :func:`fold_sample` turns such a sample into the backlog.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Observations:
    """A snapshot of one workload's load and replicas. Times are on the caller's clock."""

    backlog: int = 0
    """Events matched by the workload's triggers and waiting to be delivered."""

    in_flight: int = 0
    """Events handed to a replica and not yet acknowledged."""

    arrival_rate: float = 0.0
    """Events per second arriving for the workload, smoothed over a short window."""

    steady_arrival_rate: float | None = None
    """The long-window arrival rate without the surge detector's switch to the last
    few seconds (``None``: same as ``arrival_rate``). What a burst that already arrived
    says about the next seconds is this, not the burst's own rate."""

    service_rate: float | None = None
    """Events per second one replica completes with all its concurrency slots busy
    (``concurrency / mean service time``), measured from completed events; ``None``
    until the first completion."""

    startup_time: float | None = None
    """Seconds from creating a replica to it being ready, measured; ``None`` until the
    first replica became ready."""

    starting: int = 0
    """Replicas created and not yet ready (coming capacity)."""

    ready: int = 0
    """Replicas that accept events."""

    draining: int = 0
    """Replicas leaving: they finish their in-flight events and take no new ones."""

    last_arrival: float | None = None
    """When the last event arrived, or ``None`` if none ever did."""

    last_activity: float | None = None
    """When the workload last had work: the last arrival or completion (``now`` while
    events are waiting or in flight). The idle clock starts here."""

    idle_gaps: tuple[float, ...] = ()
    """Recent idle gaps in seconds: time from the moment the workload ran out of work to
    the next arrival. Feeds the adaptive keep-alive."""

    idle_gap_weights: tuple[float, ...] = ()
    """How many idle periods each of ``idle_gaps`` stands for (empty: one each). The
    recorder keeps rare long gaps apart from frequent short ones and weighs them by
    their real frequency."""

    source_active: bool | None = None
    """Activity as reported by an external :class:`MetricSource` (which applies its own
    activation threshold, as KEDA scalers do); ``None`` when the backlog is our own and
    activity is ``backlog + in_flight > activation_threshold``."""

    @property
    def work(self) -> int:
        """Events waiting or in flight."""
        return self.backlog + self.in_flight

    @property
    def replicas(self) -> int:
        """Replicas that are or will be capacity: starting plus ready."""
        return self.starting + self.ready


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One probe of an external source: KEDA's ``GetMetricsAndActivity`` pair."""

    value: float
    """The metric, in events: queue depth (ready + unacknowledged) or consumer lag."""

    active: bool
    """Whether the source counts as active (``value > activation threshold``, decided by
    the source so that special cases such as Kafka's invalid offsets stay there)."""


class MetricSource(Protocol):
    """An external backlog (RabbitMQ queue depth, Kafka lag) the decider can be fed with."""

    async def read(self) -> MetricSample:
        """Probe the source once; raise :class:`eventing.errors.SourceError` on failure."""
        ...


def fold_sample(
    obs: Observations, sample: MetricSample, *, includes_in_flight: bool
) -> Observations:
    """Return ``obs`` with its backlog taken from an external sample.

    ``includes_in_flight``: whether the sampled value already counts the events our
    replicas hold (RabbitMQ's management ``messages`` = ready + unacked does; AMQP's
    passive declare and Kafka lag on committed offsets may not). When it does, those
    events are subtracted so they are not counted twice. Fractional values round up: a
    lag of 0.5 still means work.
    """
    if not math.isfinite(sample.value):
        raise ValueError(f"metric value must be finite, got {sample.value}")
    value = max(0.0, sample.value)
    if includes_in_flight:
        value = max(0.0, value - obs.in_flight)
    backlog = math.ceil(value - 1e-9) if value > 0 else 0
    return replace(obs, backlog=backlog, source_active=sample.active)
