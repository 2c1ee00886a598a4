"""Knative KPA with its defaults: decider, PA reconciler and scale-to-zero state machine.

Faithful to reference §3 (``knative/serving`` ``pkg/autoscaler/scaling/autoscaler.go``,
``pkg/reconciler/autoscaling/kpa/{kpa,scaler}.go``). What the simulation uses:

- metric: total concurrency of the revision (events waiting in the activator or
  queue-proxy plus those in the container) = our backlog + in-flight. Each second the
  collector records the time-averaged concurrency of the last second when pods are
  ready or requests are held (a scrape of zero pods returns no stat); the activator's
  first request at zero is also recorded and pokes the decider at once;
- windows: stable 60 s, panic 10 % = 6 s (:mod:`.kpa_window`); tick every 2 s;
- target: our replicas have a concurrency limit, so the ``containerConcurrency``
  variant applies: target = cc x ``container-concurrency-target-percentage`` 0.7
  (2.8 for cc = 4; with cc = 0 it would be 100 x 0.7 = 70);
- panic threshold 200 %, max scale-up rate 1000, max scale-down rate 2, ratchet while
  panicking, leave panic after a stable window below threshold;
- scale to zero: the decider must read 0 (the stable window all zero), the PA must have
  been Active for a stable window (else 1 replica is kept), then it is marked Inactive
  and the pods go once it has been Inactive for the 30 s grace *or* the activator has
  already been in the path that long (fast path). With target-burst-capacity 211 and a
  small cc the activator is nearly always in the path, so zero comes about 60 s after
  the last request;
- min-scale 0, max-scale 0 (unbounded), initial-scale ignored (every run starts at zero,
  as after a long idle), scale-down-delay 0, activation-scale 1;
- scale-in victims chosen by the ReplicaSet; queue-proxy drains in-flight requests up to
  ``timeoutSeconds`` (300 s) before the pod exits.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from eventing.autoscaler.baselines.kpa_window import TimedBuckets
from eventing.autoscaler.policy import Dispatch, ScaleIn, SimView

TICK_INTERVAL = 2.0
SCRAPE_INTERVAL = 1.0
STABLE_WINDOW = 60.0
PANIC_WINDOW_PERCENTAGE = 10.0
PANIC_THRESHOLD = 2.0
MAX_SCALE_UP_RATE = 1000.0
MAX_SCALE_DOWN_RATE = 2.0
TARGET_UTILIZATION = 0.7
CONCURRENCY_TARGET_DEFAULT = 100.0
TARGET_BURST_CAPACITY = 211.0
SCALE_TO_ZERO_GRACE = 30.0
REVISION_TIMEOUT = 300.0
SCALE_UNKNOWN = -1

PaStatus = Literal["inactive", "activating", "active"]


@dataclass(frozen=True, slots=True)
class KpaDecision:
    """The decider's output for one tick."""

    desired: int
    excess_burst_capacity: float
    panicking: bool


class KpaDecider:
    """``autoscaler.Scale``: stable/panic windows and the panic ratchet."""

    def __init__(self, container_concurrency: int) -> None:
        total = float(container_concurrency) if container_concurrency > 0 else 100.0
        self.total = total
        self.target = max(0.01, total * TARGET_UTILIZATION)
        self.stable = TimedBuckets(STABLE_WINDOW)
        self.panic = TimedBuckets(STABLE_WINDOW * PANIC_WINDOW_PERCENTAGE / 100.0)
        self.panic_time: float | None = None
        self.max_panic_pods = 0

    def record(self, now: float, concurrency: float) -> None:
        self.stable.record(now, concurrency)
        self.panic.record(now, concurrency)

    def scale(self, now: float, ready: int) -> KpaDecision | None:
        """One decision, or ``None`` without data (``ErrNoData``: keep the last one)."""
        if self.stable.is_empty(now):
            return None
        rp = max(1, ready)
        stable = self.stable.window_average(now)
        panic = self.panic.window_average(now)
        max_up = math.ceil(MAX_SCALE_UP_RATE * rp)
        max_down = math.floor(rp / MAX_SCALE_DOWN_RATE)
        dspc = math.ceil(stable / self.target)
        dppc = math.ceil(panic / self.target)
        ds = int(min(max(dspc, max_down), max_up))
        dp = int(min(max(dppc, max_down), max_up))
        over = dppc / rp >= PANIC_THRESHOLD
        if over:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + STABLE_WINDOW < now:
            self.panic_time = None
            self.max_panic_pods = 0
        desired = ds
        if self.panic_time is not None:
            desired = max(desired, dp)
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods
        ebc = math.floor(ready * self.total - TARGET_BURST_CAPACITY - panic)
        return KpaDecision(desired, ebc, self.panic_time is not None)


@dataclass
class PodAutoscaler:
    """The PA's Active condition and the SKS mode, with their transition times."""

    status: PaStatus = "inactive"
    since: float = -math.inf
    proxy: bool = True
    proxy_since: float = -math.inf

    def _mark(self, status: PaStatus, now: float) -> None:
        if status != self.status:
            self.status, self.since = status, now

    def handle_scale_to_zero(self, now: float, desired: int) -> tuple[int, bool]:
        """``scaler.handleScaleToZero``: (scale, apply it?)."""
        if desired != 0:
            return desired, True
        if self.status == "activating":
            return SCALE_UNKNOWN, False
        if self.status == "active":
            if now - self.since >= STABLE_WINDOW:
                return 0, False  # mark inactive first; the activator takes over
            return 1, True
        if now - self.since >= SCALE_TO_ZERO_GRACE:
            return 0, True
        if self.proxy and now - self.proxy_since >= SCALE_TO_ZERO_GRACE:
            return 0, True  # fast path: activator already in the path long enough
        return 0, False

    def reconcile(self, now: float, want: int, ebc: float, ready: int) -> None:
        """SKS mode, then ``computeActiveCondition`` (minReady = 1)."""
        proxy = want == 0 or ebc < 0 or (want == SCALE_UNKNOWN and self.status == "inactive")
        if proxy != self.proxy:
            self.proxy, self.proxy_since = proxy, now
        if want == 0:
            self._mark("inactive", now)
        elif ready < 1:
            if want > 0 or self.status != "inactive":
                self._mark("activating", now)
        elif want > 0 or self.status != "inactive":
            self._mark("active", now)


class KpaPolicy:
    """Knative KPA (2 s ticks, 1 s scrapes, activator poke) as one simulated policy."""

    dispatch: Dispatch = "spread"
    scale_in: ScaleIn = "replicaset"

    def __init__(self, *, container_concurrency: int, termination_grace: float = REVISION_TIMEOUT):
        self.name = "kpa"
        self.termination_grace = termination_grace
        self.decider = KpaDecider(container_concurrency)
        self.pa = PodAutoscaler()
        self.last_desired = 0
        self._ebc = -1.0
        self._next_tick = 0.0
        self._next_scrape = 0.0
        self._last_scrape = 0.0
        self._last_integral = 0.0

    def start(self, now: float, rng: random.Random) -> None:
        self._next_tick = now + rng.uniform(0.0, TICK_INTERVAL)
        self._next_scrape = now + rng.uniform(0.0, SCRAPE_INTERVAL)
        self._last_scrape = now

    def next_wakeup(self) -> float:
        return min(self._next_tick, self._next_scrape)

    def _scrape(self, now: float, view: SimView) -> None:
        integral = view.work_integral(now)
        elapsed = now - self._last_scrape
        average = (integral - self._last_integral) / elapsed if elapsed > 0 else 0.0
        self._last_scrape, self._last_integral = now, integral
        if view.ready > 0 or average > 0:
            self.decider.record(now, average)

    def _decide_and_reconcile(self, now: float, view: SimView) -> int:
        decision = self.decider.scale(now, view.ready)
        if decision is not None:
            self.last_desired = decision.desired
            self._ebc = decision.excess_burst_capacity
        want, apply = self.pa.handle_scale_to_zero(now, self.last_desired)
        replicas = view.spec_replicas
        if apply and want >= 0:
            replicas = want
        self.pa.reconcile(now, want, self._ebc, view.ready)
        return replicas

    def tick(self, now: float, view: SimView) -> int:
        replicas = view.spec_replicas
        if now >= self._next_scrape:
            self._next_scrape += SCRAPE_INTERVAL
            self._scrape(now, view)
        if now >= self._next_tick:
            self._next_tick += TICK_INTERVAL
            replicas = self._decide_and_reconcile(now, view)
        return replicas

    def on_arrival(self, now: float, view: SimView) -> int | None:
        if self.last_desired != 0:
            return None
        # The activator reports the held request and pokes the autoscaler.
        self.decider.record(now, float(view.backlog + view.in_flight))
        return self._decide_and_reconcile(now, view)

    def on_completion(self, now: float, service_time: float, view: SimView) -> None:
        return None

    def on_ready(self, now: float, startup_time: float, view: SimView) -> None:
        return None
