"""What the scaler and the delivery path need from a workload runtime, as two small
protocols: an :class:`Actuator` (make N replicas exist, tell how many are in which
state) and a :class:`Router` (which replica gets the next event, and where it is).

Why two: actuation and routing vary independently. Local processes are actuated by
starting and stopping subprocesses, and routed by us, replica by replica (least busy
first, never beyond the per-replica concurrency). A Kubernetes Deployment is actuated
through its scale subresource, and routed by its Service: we hand events to one
address and Kubernetes picks the pod, so our router only bounds how many events are in
flight against the ready capacity. The scaler sees an :class:`Actuator` only; the
workload sink sees a :class:`Router` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

#: The replica states the autoscaler counts (design §7).
ReplicaState = Literal["starting", "ready", "draining"]
STATES: tuple[ReplicaState, ...] = ("starting", "ready", "draining")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one event goes: a base URL (the workload's ``path`` is appended by the
    sink) and an opaque lease the router takes back on :meth:`Router.release`."""

    url: str
    lease: object = None


class Actuator(Protocol):
    """Makes a workload run a number of replicas and reports what runs."""

    @property
    def desired(self) -> int:
        """The replica count last asked for with :meth:`scale_to`."""
        ...

    async def scale_to(self, replicas: int) -> None:
        """Ask for ``replicas`` replicas. Returns once the request is under way (not when
        the replicas are ready); failures show in :attr:`error` and are retried."""
        ...

    def count(self, state: ReplicaState) -> int:
        """Replicas in ``state`` as last observed."""
        ...

    @property
    def error(self) -> str | None:
        """Why the actuator cannot do what was asked right now (``None`` when fine).
        Shown by ``eventing status``; never contains a secret."""
        ...

    def details(self) -> dict[str, Any]:
        """Runtime-specific fields for the status document (replica list, target...)."""
        ...

    def on_ready(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(startup_seconds)`` each time a replica becomes ready (feeds the
        measured startup time and the activation latency)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop what this actuator owns (local replicas drain and stop; a Kubernetes
        target is left as it is: the cluster owns it)."""
        ...


class Router(Protocol):
    """Picks where the next event of a workload goes."""

    def ready_count(self) -> int: ...

    @property
    def in_flight(self) -> int:
        """Events handed out by :meth:`acquire` and not yet released."""
        ...

    async def wait_ready(self) -> None:
        """Return once at least one replica is ready to take events."""
        ...

    async def acquire(self) -> Endpoint:
        """Where the next event goes, once there is room; waits (burning no retry)
        while every ready replica is at its concurrency."""
        ...

    async def release(self, endpoint: Endpoint) -> None: ...
