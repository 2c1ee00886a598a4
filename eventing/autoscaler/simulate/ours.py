"""Our policy in the simulator: the production ``decide`` behind the policy contract.

Why a thin adapter: the point of the simulator is to measure the code that ships. This
class therefore holds no policy of its own. It feeds an
:class:`~eventing.autoscaler.measure.ObservationRecorder` from the simulated world
(arrivals, completions, replicas becoming ready), exactly as the runtime will, and calls
:func:`~eventing.autoscaler.decide.decide` on the same cadence as the production loop:
every second, and at once when an event arrives for a workload at zero (the broker's
poke). Dispatch packs events onto the oldest ready replicas and scale-in takes idle
replicas first, as our runtime does.
"""

from __future__ import annotations

import random

from eventing.autoscaler.decide import DeciderState, Decision, decide
from eventing.autoscaler.measure import ObservationRecorder
from eventing.autoscaler.policy import Dispatch, ScaleIn, SimView
from eventing.autoscaler.spec import ScalingSpec

TICK_INTERVAL = 1.0


class OursPolicy:
    """``decide`` on a 1 s tick plus a poke on the first event at zero."""

    dispatch: Dispatch = "pack"
    scale_in: ScaleIn = "idle-first"

    def __init__(
        self,
        spec: ScalingSpec,
        *,
        termination_grace: float | None = None,
        keep_log: bool = False,
    ) -> None:
        self.name = "ours"
        self.spec = spec
        # A busy replica chosen to go drains up to maxDrainSeconds, as in the runtime.
        self.termination_grace = spec.max_drain if termination_grace is None else termination_grace
        self.recorder = ObservationRecorder(concurrency=spec.concurrency_per_replica)
        self.state = DeciderState()
        self.log: list[tuple[float, int, str]] | None = [] if keep_log else None
        self._next_tick = 0.0

    def start(self, now: float, rng: random.Random) -> None:
        self._next_tick = now + rng.uniform(0.0, TICK_INTERVAL)

    def next_wakeup(self) -> float:
        return self._next_tick

    def _decide(self, now: float, view: SimView) -> Decision:
        obs = self.recorder.snapshot(
            now,
            backlog=view.backlog,
            in_flight=view.in_flight,
            starting=view.starting,
            ready=view.ready,
            draining=view.draining,
        )
        decision = decide(self.spec, obs, now, self.state)
        self.state = decision.state
        if self.log is not None and decision.replicas != view.spec_replicas:
            self.log.append((now, decision.replicas, decision.reason))
        return decision

    def tick(self, now: float, view: SimView) -> int:
        self._next_tick += TICK_INTERVAL
        return self._decide(now, view).replicas

    def on_arrival(self, now: float, view: SimView) -> int | None:
        work_before = view.backlog + view.in_flight - 1
        self.recorder.arrival(now, work_before=work_before)
        if view.spec_replicas == 0:
            return self._decide(now, view).replicas
        return None

    def on_completion(self, now: float, service_time: float, view: SimView) -> None:
        work_after = view.backlog + view.in_flight
        self.recorder.completion(now, service_time=service_time, work_after=work_after)

    def on_ready(self, now: float, startup_time: float, view: SimView) -> None:
        self.recorder.replica_ready(startup_time)
