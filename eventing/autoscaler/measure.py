"""Turns a workload's raw happenings into :class:`Observations`.

Why here and not in the runtime: the simulator must feed :func:`decide` with
observations computed exactly the way production computes them, otherwise the
simulator table says nothing about production. So both call this recorder: the
runtime from the broker's and the replica runtime's callbacks, the simulator from its
event loop. It is the only mutable piece of the autoscaler core; time is always a
parameter, never read from a clock.

Estimators, and why:

- arrival rate: events in the last ``rate_window`` (30 s) seconds divided by the time
  that covers, counted in 1 s buckets (bounded memory at any rate). A long window keeps
  Poisson noise from adding replicas in steady state; to still see a surge within
  seconds, the rate over the last ``surge_window`` (5 s) is used instead when it is a
  significant rise: more than 3 standard deviations (Poisson) above what the long
  window predicts for that span. Fast attack, slow release; the decider's
  stabilisation window handles the release;
- service time: exponentially weighted mean of completed events' service durations
  (weight ``service_alpha`` per event), reported as a per-replica rate
  ``concurrency / mean``;
- startup time: exponentially weighted mean of creation-to-ready durations;
- idle gaps: from the moment the workload runs out of work (nothing waiting or in
  flight) to the next arrival; gaps shorter than ``min_idle_gap`` are not idle periods
  (a 1 s decision loop cannot act on them) and are not recorded, so a busy period does
  not flush the long gaps out of the bounded history.
"""

from __future__ import annotations

import math
from collections import deque

from eventing.autoscaler.observe import Observations


class ObservationRecorder:
    """Accumulates arrivals, completions and replica starts for one workload."""

    def __init__(
        self,
        *,
        concurrency: int,
        rate_window: float = 30.0,
        surge_window: float = 5.0,
        service_alpha: float = 0.01,
        startup_alpha: float = 0.2,
        min_idle_gap: float = 1.0,
        max_idle_gaps: int = 128,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if rate_window <= 0:
            raise ValueError(f"rate_window must be > 0, got {rate_window}")
        self._concurrency = concurrency
        self._window = rate_window
        self._surge_window = surge_window
        self._service_alpha = service_alpha
        self._startup_alpha = startup_alpha
        self._min_idle_gap = min_idle_gap
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self._bucket_total = 0
        self._mean_service: float | None = None
        self._mean_startup: float | None = None
        self._last_arrival: float | None = None
        self._last_activity: float | None = None
        self._idle_since: float | None = None
        self._gaps: deque[float] = deque(maxlen=max_idle_gaps)
        self._gaps_tuple: tuple[float, ...] = ()

    def arrival(self, now: float, *, work_before: int, count: int = 1) -> None:
        """``count`` events arrived; ``work_before`` = waiting + in flight just before."""
        second = int(now // 1.0)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._bucket_total += count
        if work_before == 0 and self._idle_since is not None:
            gap = now - self._idle_since
            if gap >= self._min_idle_gap:
                self._gaps.append(gap)
                self._gaps_tuple = tuple(self._gaps)
        self._idle_since = None
        self._last_arrival = now
        self._last_activity = now

    def completion(self, now: float, *, service_time: float, work_after: int) -> None:
        """An event finished after ``service_time`` s; ``work_after`` events remain."""
        if self._mean_service is None:
            self._mean_service = service_time
        else:
            a = self._service_alpha
            self._mean_service += a * (service_time - self._mean_service)
        self._last_activity = now
        if work_after == 0:
            self._idle_since = now

    def replica_ready(self, startup_time: float) -> None:
        """A replica became ready ``startup_time`` s after it was created."""
        if self._mean_startup is None:
            self._mean_startup = startup_time
        else:
            a = self._startup_alpha
            self._mean_startup += a * (startup_time - self._mean_startup)

    def arrival_rate(self, now: float) -> float:
        """Events per second over the last ``rate_window`` seconds.

        Only whole buckets starting inside the window are counted, divided by the time
        they span (``now`` minus the first such bucket's start), so a partly counted
        bucket never biases the rate upwards.
        """
        start = math.ceil(now - self._window)
        buckets = self._buckets
        while buckets and buckets[0][0] < start:
            self._bucket_total -= buckets.popleft()[1]
        span = now - start
        if span <= 0:
            return 0.0
        rate = self._bucket_total / span
        surge_start = math.ceil(now - self._surge_window)
        surge_span = now - surge_start
        recent = 0
        for second, count in reversed(buckets):
            if second < surge_start:
                break
            recent += count
        expected = rate * surge_span
        if surge_span > 0 and recent > expected + 3.0 * math.sqrt(expected) + 1.0:
            return recent / surge_span
        return rate

    def snapshot(
        self,
        now: float,
        *,
        backlog: int,
        in_flight: int,
        starting: int,
        ready: int,
        draining: int,
    ) -> Observations:
        """The observations at ``now``, given the current queue and replica counts."""
        mean = self._mean_service
        service_rate = self._concurrency / mean if mean is not None and mean > 0 else None
        busy = backlog + in_flight > 0
        return Observations(
            backlog=backlog,
            in_flight=in_flight,
            arrival_rate=self.arrival_rate(now),
            service_rate=service_rate,
            startup_time=self._mean_startup,
            starting=starting,
            ready=ready,
            draining=draining,
            last_arrival=self._last_arrival,
            last_activity=now if busy else self._last_activity,
            idle_gaps=self._gaps_tuple,
        )
