"""A workload whose replicas are a Kubernetes resource's pods, scaled through its scale
subresource (Deployment, StatefulSet, or any custom resource that has one; the target
is named as KEDA's ``scaleTargetRef``: apiVersion, kind, name).

How it works: :meth:`KubeActuator.scale_to` records the wanted count and wakes the
reconcile loop, which runs every API call in a worker thread with a deadline:

1. discover the kind once (its plural, whether it has a scale subresource);
2. read the scale subresource; patch ``spec.replicas`` when it differs from the wanted
   count (the scaler is the only writer we expect; another writer is corrected);
3. count replicas by state: from the target's status (``readyReplicas``, kept by the
   Deployment/StatefulSet controller; one small GET) while nothing is leaving, and from
   the pods the scale's label selector picks after a scale-in, until none is
   terminating: ready (condition Ready, not being deleted), draining (being deleted:
   Kubernetes runs their preStop hook and grace period), starting (the rest, plus pods
   asked for and not yet created).

It polls quickly while something is starting or being patched and once a second
otherwise. Any failure (API server unreachable, target missing, no scale subresource,
forbidden) goes into :attr:`error`, which ``eventing status`` shows, and the loop
retries with exponential backoff up to :data:`MAX_BACKOFF`; nothing else in the
process is affected. :meth:`close` leaves the target as it is (the cluster owns it)
and the API connection open (whoever passed it in owns that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eventing.kube.api import ApiResource, KubeApi, KubeError, split_api_version
from eventing.workloads.actuator import ReplicaState

logger = logging.getLogger(__name__)

FAST_POLL = 0.25
SLOW_POLL = 1.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
CALL_DEADLINE = 15.0
"""No API call is awaited longer than this (the request timeouts end it sooner)."""


@dataclass(frozen=True)
class ScaleTarget:
    api_version: str
    kind: str
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} ({self.api_version})"


class KubeActuator:
    """Scales one target through its scale subresource; observes its pods."""

    def __init__(
        self,
        api: Callable[[], KubeApi],
        target: ScaleTarget,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = api
        self._api: KubeApi | None = None
        self.target = target
        self.clock = clock
        self._wanted: int | None = None
        self._spec_replicas: int | None = None
        self._counts: dict[ReplicaState, int] = {"starting": 0, "ready": 0, "draining": 0}
        self._error: str | None = None
        self._resource: ApiResource | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready_callbacks: list[Callable[[float], None]] = []
        self._change_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._asked_at: deque[float] = deque(maxlen=100_000)
        self.api_calls = 0
        self.patches = 0
        self.observed_at: float | None = None
        self._has_status = True
        """Whether the target's status carries ready counts (until seen otherwise)."""
        self._draining_possible = True
        """Whether pods may be terminating (after a scale-in, until a pod list shows
        none): then the pods are listed to count them as draining; otherwise the
        controller's status is read, which is much cheaper."""
        self.retry_in: float | None = None
        """Seconds until the next try after a failure (grows up to MAX_BACKOFF)."""

    # -- Actuator ------------------------------------------------------------------

    @property
    def desired(self) -> int:
        if self._wanted is not None:
            return self._wanted
        return self._spec_replicas or 0

    async def scale_to(self, replicas: int) -> None:
        before = self.desired
        if replicas < before:
            self._draining_possible = True  # pods will terminate: count them from pods
        self._wanted = replicas
        now = self.clock()
        for _ in range(max(0, replicas - max(before, self._counts["ready"]))):
            self._asked_at.append(now)
        self._wake.set()

    def count(self, state: ReplicaState) -> int:
        return self._counts[state]

    @property
    def error(self) -> str | None:
        return self._error

    def details(self) -> dict[str, Any]:
        return {
            "runtime": "kubernetes",
            "target": str(self.target),
            "specReplicas": self._spec_replicas,
            "apiCalls": self.api_calls,
            "patches": self.patches,
            "retryInSeconds": self.retry_in,
        }

    def on_ready(self, callback: Callable[[float], None]) -> None:
        self._ready_callbacks.append(callback)

    def on_change(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call ``callback()`` after every observation (the router waits on it)."""
        self._change_callbacks.append(callback)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"kubernetes actuator {self.target}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            self._wake.clear()
            try:
                await self.reconcile()
            except (KubeError, ValueError, TypeError, KeyError) as exc:
                # KubeError: the API said no or was not there; the others: an answer of
                # an unexpected shape. Either way: say why, back off, try again.
                message = str(exc) if isinstance(exc, KubeError) else f"bad answer: {exc!r}"
                self._failed(message[:300])
                delay, backoff = backoff, min(MAX_BACKOFF, backoff * 2)
                self.retry_in = delay
            else:
                self._error = None
                self.retry_in = None
                backoff = FIRST_BACKOFF
                busy = self._counts["starting"] or self._spec_replicas != self.desired
                delay = FAST_POLL if busy else SLOW_POLL
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _failed(self, message: str) -> None:
        if message != self._error:
            where = str(self.target)
            logger.warning("%s", message if message.startswith(where) else f"{where}: {message}")
        self._error = message

    async def reconcile(self) -> None:
        """One pass: discover, read the scale, patch if needed, observe the pods."""
        resource = await self._discover()
        t = self.target
        scale = await self._call(
            lambda api: api.get_scale(t.api_version, resource.plural, t.namespace, t.name)
        )
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        if self._wanted is not None and spec_replicas != self._wanted:
            wanted = self._wanted
            scale = await self._call(
                lambda api: api.patch_scale(
                    t.api_version, resource.plural, t.namespace, t.name, wanted
                )
            )
            self.patches += 1
            spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        self._spec_replicas = spec_replicas
        selector = str((scale.get("status") or {}).get("selector") or "")
        counts: dict[ReplicaState, int] | None = None
        if self._has_status and (not selector or not self._draining_possible):
            counts = await self._from_status(resource)
            self._has_status = counts is not None
        if counts is None and selector:
            pods = await self._call(lambda api: api.list_pods(t.namespace, selector))
            counts = count_pods(pods, self.desired)
            self._draining_possible = counts["draining"] > 0 or spec_replicas != self.desired
        if counts is None:  # neither a controller's status nor a selector: trust the spec
            counts = {"starting": 0, "ready": spec_replicas, "draining": 0}
        await self._observed(counts)

    async def _from_status(self, resource: ApiResource) -> dict[ReplicaState, int] | None:
        """Counts from the object's status, kept by its controller (Deployment,
        StatefulSet, ReplicaSet: ``observedGeneration`` and ``readyReplicas``): one small
        GET instead of listing every pod. None if the object has no such status."""
        t = self.target
        obj = await self._call(
            lambda api: api.get_object(t.api_version, resource.plural, t.namespace, t.name)
        )
        status = obj.get("status") or {}
        if "observedGeneration" not in status and "readyReplicas" not in status:
            return None
        ready = int(status.get("readyReplicas") or 0)
        return {"starting": max(0, self.desired - ready), "ready": ready, "draining": 0}

    async def _discover(self) -> ApiResource:
        if self._resource is not None:
            return self._resource
        t = self.target
        group, _ = split_api_version(t.api_version)
        if not group:
            raise KubeError(
                400, f"{t}: core-group kinds cannot be scale targets here; use apps/v1 or a CRD"
            )
        try:
            resource: ApiResource = await self._call(
                lambda api: api.api_resource(t.api_version, t.kind)
            )
        except KubeError as exc:
            if exc.status == 404:
                raise KubeError(404, f"{t}: the API server does not serve this kind") from None
            raise
        if not resource.scalable:
            raise KubeError(422, f"{t}: {t.kind} has no scale subresource, so it cannot be scaled")
        if not resource.namespaced:
            raise KubeError(422, f"{t}: {t.kind} is cluster-scoped; scale targets are namespaced")
        self._resource = resource
        return resource

    async def _call(self, call: Callable[[KubeApi], Any]) -> Any:
        if self._api is None:
            self._api = await asyncio.to_thread(self._connect)
        api = self._api
        self.api_calls += 1
        try:
            async with asyncio.timeout(CALL_DEADLINE):
                return await asyncio.to_thread(call, api)
        except TimeoutError:
            raise KubeError(
                None, f"the API server did not answer within {CALL_DEADLINE:.0f}s"
            ) from None
        except KubeError as exc:
            if exc.status == 404 and self._resource is not None:
                raise KubeError(404, f"{self.target} not found") from None
            raise

    async def _observed(self, counts: dict[ReplicaState, int]) -> None:
        now = self.clock()
        became_ready = counts["ready"] - self._counts["ready"]
        for _ in range(max(0, became_ready)):
            if not self._asked_at:
                break
            startup = now - self._asked_at.popleft()
            for callback in self._ready_callbacks:
                callback(startup)
        self._counts = counts
        self.observed_at = now
        for change in self._change_callbacks:
            await change()


def count_pods(pods: list[Any], desired: int) -> dict[ReplicaState, int]:
    """Replicas by state from the target's pods; pods asked for but not yet created
    count as starting (coming capacity, so the scaler does not ask twice)."""
    ready = starting = draining = 0
    for pod in pods:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            draining += 1
        elif status.get("phase") in ("Succeeded", "Failed"):
            continue
        elif any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            ready += 1
        else:
            starting += 1
    starting = max(starting, desired - ready)
    return {"starting": max(0, starting), "ready": ready, "draining": draining}
