"""The loop around :func:`eventing.autoscaler.decide.decide` for one workload.

It ticks every second, and at once when poked: the broker pokes it the moment an event
arrives for a workload at zero (no polling delay on activation; KEDA waits for its next
30 s poll). Each tick builds :class:`Observations` from what the runtime knows exactly
(the triggers' backlog, the replicas' in-flight counts and states, arrivals and service
times recorded by :class:`ObservationRecorder`), or from an external queue's depth or
lag when the workload scales on one, and applies the decision through the workload's
:class:`~eventing.workloads.actuator.Actuator` (local processes or a Kubernetes scale
subresource: the loop does not know which).

Every decision that changes the replica count is logged with its reason (logger
``eventing.decisions``, and one JSON line per decision in ``decisions.jsonl`` in the
data directory, through :class:`~eventing.workloads.decisionlog.DecisionLog`, which
writes it off the event loop and rotates it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventing.autoscaler.decide import DeciderState, Decision, decide
from eventing.autoscaler.measure import ObservationRecorder
from eventing.autoscaler.observe import MetricSample, MetricSource, Observations, fold_sample
from eventing.autoscaler.spec import ScalingSpec
from eventing.workloads.actuator import Actuator
from eventing.workloads.decisionlog import DecisionLog

logger = logging.getLogger(__name__)
decisions_log = logging.getLogger("eventing.decisions")

TICK = 1.0


@dataclass
class External:
    """An external queue the workload scales on, polled on its own interval."""

    source: MetricSource
    interval: float
    includes_in_flight: bool
    last: MetricSample | None = None
    error: str | None = None


class WorkloadScaler:
    def __init__(
        self,
        name: str,
        spec: ScalingSpec,
        actuator: Actuator,
        recorder: ObservationRecorder,
        *,
        backlog: Callable[[], int],
        in_flight: Callable[[], int] = lambda: 0,
        external: Sequence[External] = (),
        decision_log: DecisionLog | None = None,
        on_decision: Callable[[Decision, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.spec = spec
        self.actuator = actuator
        self.recorder = recorder
        self.backlog = backlog
        self.in_flight = in_flight
        """Events handed to replicas and not yet answered (the router counts them)."""
        self.external = list(external)
        self.decision_log = decision_log
        self.on_decision = on_decision
        self.clock = clock
        self.state = DeciderState()
        self.last: Decision | None = None
        self.last_at: float | None = None
        self.last_obs: Observations | None = None
        self.activated_at: float | None = None
        self._poked = asyncio.Event()

    def poke(self) -> None:
        """Decide now (an event arrived for a workload at zero)."""
        if self.activated_at is None and self.actuator.desired == 0:
            self.activated_at = self.clock()
        self._poked.set()

    def arrived(self, count: int = 1) -> None:
        """Called by the broker for each event routed to one of the workload's triggers."""
        waiting_before = max(0, self.backlog() - count)
        self.recorder.arrival(self.clock(), work_before=waiting_before, count=count)
        if self.actuator.desired == 0:
            self.poke()

    def observations(self, now: float) -> Observations:
        in_flight = self.in_flight()
        obs = self.recorder.snapshot(
            now,
            backlog=max(0, self.backlog() - in_flight),
            in_flight=in_flight,
            starting=self.actuator.count("starting"),
            ready=self.actuator.count("ready"),
            draining=self.actuator.count("draining"),
        )
        for ext in self.external:
            if ext.last is not None:
                obs = fold_sample(obs, ext.last, includes_in_flight=ext.includes_in_flight)
        return obs

    def decide(self) -> Decision:
        """Decide now and remember the decision; :meth:`tick` also applies it."""
        now = self.clock()
        obs = self.observations(now)
        decision = decide(self.spec, obs, now, self.state)
        self.state = decision.state
        previous = self.actuator.desired
        self.last, self.last_at, self.last_obs = decision, now, obs
        if decision.replicas != previous:
            self._record(decision, previous, obs)
        return decision

    async def tick(self) -> Decision:
        decision = self.decide()
        if decision.replicas != self.actuator.desired:
            await self.actuator.scale_to(decision.replicas)
        return decision

    def _record(self, decision: Decision, previous: int, obs: Observations) -> None:
        decisions_log.info(
            "%s: %d -> %d replicas: %s", self.name, previous, decision.replicas, decision.reason
        )
        if self.on_decision is not None:
            self.on_decision(decision, previous)
        if self.decision_log is not None:  # written by the log's own task, not here
            self.decision_log.append(
                {
                    "time": time.time(),
                    "workload": self.name,
                    "from": previous,
                    "to": decision.replicas,
                    "reason": decision.reason,
                    "backlog": obs.backlog,
                    "inFlight": obs.in_flight,
                    "arrivalRate": round(obs.arrival_rate, 3),
                }
            )

    async def run(self) -> None:
        """Tick every second and whenever poked, until cancelled."""
        pollers = [
            asyncio.create_task(self._poll(ext), name=f"{self.name} metric {i}")
            for i, ext in enumerate(self.external)
        ]
        try:
            while True:
                self._poked.clear()
                await self.tick()
                try:
                    async with asyncio.timeout(TICK):
                        await self._poked.wait()
                except TimeoutError:
                    pass
        finally:
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)

    async def _poll(self, ext: External) -> None:
        while True:
            try:
                ext.last = await ext.source.read()
                ext.error = None
                if ext.last.active and self.actuator.desired == 0:
                    self.poke()
            except Exception as exc:
                ext.error = str(exc)[:300]
                logger.warning("%s: external metric failed: %s", self.name, ext.error)
            await asyncio.sleep(ext.interval)
