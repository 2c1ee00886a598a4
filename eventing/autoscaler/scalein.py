"""Which replicas go on scale-in, and when a draining one may be stopped.

Why a pure function here and not in the runtime: killing a replica that is working is
the one scaling mistake users cannot undo (a build that ran for four minutes starts
again; KEDA users meet it as kedacore/keda#356 and #6719, Knative users as
knative/serving#3759). The rule is therefore written once, without I/O, and used by
the local process pool (:mod:`eventing.workloads.pool`) and by our policy in the
simulator, and a property test checks it for random replica states.

The rule:

1. Replicas still starting go first (newest first): they hold no work.
2. Then idle ready replicas (newest first): stopping them loses nothing.
3. Only when more must go than are idle, the least busy ready replicas are chosen, and
   they are *drained*, never stopped: they take no new events from that moment and stop
   when their last in-flight event is done.
4. A draining replica is stopped while busy only once it has drained for
   ``max_drain`` seconds (the workload's ``maxDrainSeconds``); its events are then
   redelivered, and the runtime counts them with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ReplicaPhase = Literal["starting", "ready"]

DRAIN_LIMIT_REASON = "max-drain-exceeded"
"""The reason counted for events redelivered because their replica passed its drain
limit (``eventing_workload_redeliveries_total{reason=...}``)."""


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """What the scale-in rule needs to know about one candidate replica."""

    key: int
    """Any identifier unique within the workload (the runtime uses the replica number)."""

    phase: ReplicaPhase
    in_flight: int
    created: float
    """Creation time, on any clock: only the order matters (newer goes first)."""


@dataclass(frozen=True, slots=True)
class ScaleInPlan:
    """The replicas to remove: ``stop`` hold no work; ``drain`` do and must finish it."""

    stop: tuple[int, ...] = ()
    drain: tuple[int, ...] = ()

    @property
    def chosen(self) -> tuple[int, ...]:
        return self.stop + self.drain


def plan_scale_in(replicas: Sequence[ReplicaLoad], count: int) -> ScaleInPlan:
    """Choose ``count`` of ``replicas`` (starting or ready) to remove, by the rule above.

    A replica with events in flight is never in ``stop``; it is in ``drain`` only when
    fewer than ``count`` replicas are starting or idle.
    """
    if count <= 0:
        return ScaleInPlan()
    starting = sorted((r for r in replicas if r.phase == "starting"), key=lambda r: -r.created)
    ready = [r for r in replicas if r.phase == "ready"]
    idle = sorted((r for r in ready if r.in_flight == 0), key=lambda r: -r.created)
    busy = sorted((r for r in ready if r.in_flight > 0), key=lambda r: (r.in_flight, -r.created))
    free = [r.key for r in (*starting, *idle)][:count]
    drained = [r.key for r in busy][: count - len(free)]
    return ScaleInPlan(stop=tuple(free), drain=tuple(drained))
