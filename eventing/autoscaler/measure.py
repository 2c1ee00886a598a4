"""Turns a workload's raw happenings into :class:`Observations`.

Why here and not in the runtime: the simulator must feed :func:`decide` with
observations computed exactly the way production computes them, otherwise the
simulator table says nothing about production. So both call this recorder: the
runtime from the broker's and the replica runtime's callbacks, the simulator from its
event loop. It is the only mutable piece of the autoscaler core; time is always a
parameter, never read from a clock.

Estimators, and why:

- arrival rate: events in the last ``rate_window`` seconds divided by the time that
  covers, counted in 1 s buckets (bounded memory at any rate). The window is 30 s, or
  ``rate_window_per_service`` (4) times the measured mean service time when that is
  longer, up to ``max_rate_window`` (30 min): a 30 s window cannot see the rate of jobs
  that run for four minutes, and Little's law needs the rate over at least a service
  time. A long window keeps Poisson noise from adding replicas in steady state; to
  still see a surge within seconds, the rate over the last ``surge_window`` (5 s) is
  used instead when it is a significant rise: more than ``surge_sigmas`` (5) standard
  deviations (Poisson) above what the long window predicts for that span, plus 2
  events (at 3 sigmas a rate near one event per second "surged" a dozen times an hour
  on noise alone). Fast attack, slow release; the decider's stabilisation window
  handles the release;
- service time: the plain mean of the first ``1 / service_alpha`` completions, then an
  exponentially weighted mean (weight ``service_alpha``), reported as a per-replica
  rate ``concurrency / mean``. The plain mean at first matters for long work: with few
  completions an hour, a weighted mean would keep the first (often a warm-up) duration
  for a hundred events;
- startup time: exponentially weighted mean of creation-to-ready durations;
- idle gaps: from the moment the workload runs out of work (nothing waiting or in
  flight) to the next arrival; gaps shorter than ``min_idle_gap`` are not idle periods
  (a 1 s decision loop cannot act on them) and are not recorded, so a busy period does
  not flush the long gaps out of the bounded history. Gaps of ``long_idle_gap`` (60 s)
  or more are kept apart (the last 64) from shorter ones (the last 128), each class
  weighted by how often it really occurs (decayed counts, half-life about 700 gaps),
  so a working session of hundreds of short gaps cannot make the keep-alive forget
  the long gaps between sessions (the weakness of a plain recent-gaps window when idle
  gaps come in two clusters; the ATC'20 hybrid histogram keeps its whole history for
  the same reason).
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from eventing.autoscaler.observe import Observations

GAP_COUNT_DECAY = 0.999
"""Per recorded gap, how much the counts of short and long gaps seen so far decay (a
half-life of about 700 gaps): the classes' weights follow slow changes of habit."""


class ObservationRecorder:
    """Accumulates arrivals, completions and replica starts for one workload."""

    def __init__(
        self,
        *,
        concurrency: int,
        rate_window: float = 30.0,
        rate_window_per_service: float = 4.0,
        rate_window_events: int = 50,
        max_rate_window: float = 1800.0,
        surge_window: float = 5.0,
        surge_sigmas: float = 5.0,
        service_alpha: float = 0.01,
        startup_alpha: float = 0.2,
        min_idle_gap: float = 1.0,
        max_idle_gaps: int = 128,
        long_idle_gap: float = 60.0,
        max_long_idle_gaps: int = 64,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if rate_window <= 0:
            raise ValueError(f"rate_window must be > 0, got {rate_window}")
        self._concurrency = concurrency
        self._base_window = rate_window
        self._window_per_service = rate_window_per_service
        self._window_events = rate_window_events
        self._max_window = max(rate_window, max_rate_window)
        self._surge_window = surge_window
        self._surge_sigmas = surge_sigmas
        self._completions = 0
        self._service_alpha = service_alpha
        self._startup_alpha = startup_alpha
        self._min_idle_gap = min_idle_gap
        # Arrivals per second as cumulative counts (seconds ascending), kept for the
        # longest window the rate may need, so a window that grows with the service
        # time has its history; any window's count is two lookups.
        self._seconds: list[int] = []
        self._cumulative: list[int] = []
        self._head = 0
        self._before_head = 0
        self._mean_service: float | None = None
        self._mean_startup: float | None = None
        self._last_arrival: float | None = None
        self._last_activity: float | None = None
        self._idle_since: float | None = None
        self._long_gap = long_idle_gap
        self._short_gaps: deque[float] = deque(maxlen=max_idle_gaps)
        self._long_gaps: deque[float] = deque(maxlen=max_long_idle_gaps)
        self._seen_short = 0.0
        self._seen_long = 0.0
        self._gaps_tuple: tuple[float, ...] = ()
        self._weights_tuple: tuple[float, ...] = ()

    def arrival(self, now: float, *, work_before: int, count: int = 1) -> None:
        """``count`` events arrived; ``work_before`` = waiting + in flight just before."""
        second = int(now // 1.0)
        if len(self._seconds) > self._head and self._seconds[-1] == second:
            self._cumulative[-1] += count
        else:
            total = self._cumulative[-1] if len(self._seconds) > self._head else self._before_head
            self._seconds.append(second)
            self._cumulative.append(total + count)
        if work_before == 0 and self._idle_since is not None:
            gap = now - self._idle_since
            if gap >= self._min_idle_gap:
                self._record_gap(gap)
        self._idle_since = None
        self._last_arrival = now
        self._last_activity = now

    def _record_gap(self, gap: float) -> None:
        self._seen_short *= GAP_COUNT_DECAY
        self._seen_long *= GAP_COUNT_DECAY
        if gap >= self._long_gap:
            self._long_gaps.append(gap)
            self._seen_long += 1.0
        else:
            self._short_gaps.append(gap)
            self._seen_short += 1.0
        short, long_ = self._short_gaps, self._long_gaps
        w_short = self._seen_short / len(short) if short else 0.0
        w_long = self._seen_long / len(long_) if long_ else 0.0
        self._gaps_tuple = (*short, *long_)
        self._weights_tuple = (w_short,) * len(short) + (w_long,) * len(long_)

    def completion(self, now: float, *, service_time: float, work_after: int) -> None:
        """An event finished after ``service_time`` s; ``work_after`` events remain."""
        self._completions += 1
        if self._mean_service is None:
            self._mean_service = service_time
        else:
            a = max(self._service_alpha, 1.0 / self._completions)
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

    def rate_window(self, now: float) -> float:
        """The arrival-rate window now: 30 s, or 4 mean service times, or as far back as
        the last ``rate_window_events`` (50) arrivals, whichever is longest, at most
        30 min. A rate counted over few events is mostly noise: 14 events in 30 s (a
        rate near one 2 s job at a time) vary by a quarter from window to window."""
        mean = self._mean_service or 0.0
        window = max(self._base_window, self._window_per_service * mean)
        total = self._total()
        target = total - self._window_events
        if target > self._before_head:
            # The bucket holding the last ``rate_window_events``-th arrival.
            i = bisect.bisect_left(self._cumulative, target + 1, lo=self._head)
            if i < len(self._seconds):
                window = max(window, now - self._seconds[i])
        else:
            window = self._max_window  # fewer than that many in the whole history
        return min(self._max_window, window)

    def steady_rate(self, now: float) -> float:
        """Events per second over the whole rate window, without the surge switch."""
        start = math.ceil(now - self.rate_window(now))
        self._prune(math.ceil(now - self._max_window))
        span = now - start
        return self._count_since(start) / span if span > 0 else 0.0

    def arrival_rate(self, now: float) -> float:
        """Events per second over the last ``rate_window`` seconds.

        Only whole buckets starting inside the window are counted, divided by the time
        they span (``now`` minus the first such bucket's start), so a partly counted
        bucket never biases the rate upwards.
        """
        start = math.ceil(now - self.rate_window(now))
        self._prune(math.ceil(now - self._max_window))
        span = now - start
        if span <= 0:
            return 0.0
        rate = self._count_since(start) / span
        surge_start = math.ceil(now - self._surge_window)
        surge_span = now - surge_start
        recent = self._count_since(surge_start)
        expected = rate * surge_span
        threshold = expected + self._surge_sigmas * math.sqrt(expected) + 2.0
        if surge_span > 0 and recent > threshold:
            return recent / surge_span
        return rate

    def _total(self) -> int:
        return self._cumulative[-1] if len(self._seconds) > self._head else self._before_head

    def _count_since(self, second: int) -> int:
        """Arrivals in buckets starting at or after ``second``."""
        i = bisect.bisect_left(self._seconds, second, lo=self._head)
        before = self._cumulative[i - 1] if i > self._head else self._before_head
        return self._total() - before

    def _prune(self, oldest: int) -> None:
        """Forget buckets before ``oldest``; compact the lists now and then."""
        i = bisect.bisect_left(self._seconds, oldest, lo=self._head)
        if i > self._head:
            self._before_head = self._cumulative[i - 1]
            self._head = i
        if self._head > 1024 and self._head * 2 > len(self._seconds):
            del self._seconds[: self._head]
            del self._cumulative[: self._head]
            self._head = 0

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
            steady_arrival_rate=self.steady_rate(now),
            service_rate=service_rate,
            startup_time=self._mean_startup,
            starting=starting,
            ready=ready,
            draining=draining,
            last_arrival=self._last_arrival,
            last_activity=now if busy else self._last_activity,
            idle_gaps=self._gaps_tuple,
            idle_gap_weights=self._weights_tuple,
        )
