"""The contract between the simulator and a scaling policy (ours, KEDA+HPA, Knative KPA).

Why a contract: the comparison is only fair if every policy sees the same world
through the same narrow window and acts on it only by setting a replica count, the
way each system acts on a Deployment's scale subresource. Each policy keeps its own
cadence (KEDA polls every 30 s and the HPA syncs every 15 s, Knative ticks every 2 s
and scrapes every second, ours ticks every second) by telling the simulator when it
next wants to run; push paths (Knative's activator poke, our broker's poke) are the
``on_arrival`` hook.

Besides timing, two behaviours belong to the system under test rather than to the
workload, so they are declared here too: how events are spread over replicas, and
which replicas go on scale-in (reference §7.1).
"""

from __future__ import annotations

import random
from typing import Literal, Protocol

Dispatch = Literal["pack", "spread"]
"""``pack``: fill the oldest ready replica first (our dispatcher, so idle replicas exist
to be removed); ``spread``: least-loaded replica first (RabbitMQ round-robin with
prefetch, Knative's activator and queue-proxy load balancing)."""

ScaleIn = Literal["idle-first", "replicaset"]
"""``idle-first``: starting replicas, then idle ready ones, then the least loaded (our
runtime); ``replicaset``: Kubernetes' ReplicaSet ranking, not-ready before ready, then
the most recently ready, blind to in-flight work."""


class SimView(Protocol):
    """What a policy may look at: the workload's queue and replicas right now."""

    @property
    def backlog(self) -> int:
        """Events waiting (not yet dispatched)."""
        ...

    @property
    def in_flight(self) -> int:
        """Events being served by a replica."""
        ...

    @property
    def starting(self) -> int:
        """Replicas created and not ready."""
        ...

    @property
    def ready(self) -> int:
        """Ready replicas accepting events (not draining)."""
        ...

    @property
    def draining(self) -> int:
        """Replicas terminating: finishing in-flight events, taking no new ones."""
        ...

    @property
    def spec_replicas(self) -> int:
        """The replica count last set by the policy (the scale subresource's spec)."""
        ...

    def work_integral(self, now: float) -> float:
        """Integral of ``backlog + in_flight`` over time from 0 to ``now`` (event-seconds).

        Knative's queue-proxy reports time-averaged concurrency; differences of this
        integral give exactly that average over any interval.
        """
        ...


class ScalingPolicy(Protocol):
    """A policy driven by the simulator."""

    name: str
    dispatch: Dispatch
    scale_in: ScaleIn
    termination_grace: float
    """Seconds a terminating replica may take to finish in-flight work before it is
    killed and its events go back to the queue."""

    def start(self, now: float, rng: random.Random) -> None:
        """Begin at ``now``; draw any phase offsets from ``rng``."""
        ...

    def next_wakeup(self) -> float:
        """When :meth:`tick` should next run."""
        ...

    def tick(self, now: float, view: SimView) -> int:
        """Run the scheduled work due at ``now``; return the desired replica count."""
        ...

    def on_arrival(self, now: float, view: SimView) -> int | None:
        """An event has just been enqueued; return a replica count to act at once."""
        ...

    def on_completion(self, now: float, service_time: float, view: SimView) -> None:
        """An event finished after ``service_time`` seconds of service."""
        ...

    def on_ready(self, now: float, startup_time: float, view: SimView) -> None:
        """A replica became ready ``startup_time`` seconds after it was created."""
        ...
