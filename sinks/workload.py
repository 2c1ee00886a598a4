"""Delivery to a workload (local replicas or a Kubernetes Service), through its router.

``wait_ready`` is where an event for a workload at zero waits: it pokes the scaler
(which starts a replica at once) and returns when a replica is ready, before the
dispatcher counts an attempt, so no retry is burnt and no timeout runs while the
workload starts. ``send`` then asks the router where the event goes (for local
replicas the least busy ready one with room; for a Kubernetes workload its Service,
while the ready pods have room), POSTs the event there, and records the service time
the autoscaler's rate estimates are built from.
"""

from __future__ import annotations

import time

from eventing.delivery.sink import Outcome
from eventing.events import Event
from eventing.workloads.actuator import Router
from eventing.workloads.replica import Replica
from eventing.workloads.scaler import WorkloadScaler
from sinks.http import PREFER_REPLY, post_head, request_head
from sinks.httpclient import Pool, Target

#: Parsed targets kept per router URL; local replicas get a new port each, so bounded.
MAX_TARGETS = 1024

MAX_REDELIVERIES = 3
"""Redeliveries within one attempt after our scale-in stopped the replica holding it."""


class WorkloadSink:
    def __init__(
        self,
        name: str,
        router: Router,
        scaler: WorkloadScaler,
        client: Pool,
        path: str = "",
        *,
        timeout: float | None = None,
    ) -> None:
        """``path`` is appended to the router's URLs (local replicas: the workload's
        ``path``; a Kubernetes router's URL is complete already). ``timeout`` is the
        workload's own ``timeoutSeconds``: when set, it replaces the trigger's delivery
        timeout for each attempt, because how long the work may take is a property of
        the workload (a build runs for minutes), not of every trigger that feeds it."""
        self.target = f"workload:{name}"
        self.name = name
        self.router = router
        self.scaler = scaler
        self.client = client
        self.path = path
        self.timeout = timeout
        self._targets: dict[str, Target] = {}

    async def wait_ready(self) -> None:
        if self.router.ready_count() == 0:
            self.scaler.poke()
            await self.router.wait_ready()

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        head, body = request_head(event, structured)
        if self.timeout is not None:
            timeout = self.timeout
        for _ in range(MAX_REDELIVERIES + 1):
            endpoint = await self.router.acquire()
            target = self._targets.get(endpoint.url)
            if target is None:
                if len(self._targets) >= MAX_TARGETS:
                    self._targets.clear()
                target = self._targets[endpoint.url] = Target.parse(
                    endpoint.url + self.path
                ).with_fixed(PREFER_REPLY)
            started = time.monotonic()
            try:
                result = await post_head(self.client, target, head, body, timeout)
            finally:
                await self.router.release(endpoint)
            if result.status is not None and 200 <= result.status < 300:
                now = time.monotonic()
                self.scaler.recorder.completion(
                    now, service_time=now - started, work_after=max(0, self.scaler.backlog() - 1)
                )
                return result
            if not (isinstance(endpoint.lease, Replica) and endpoint.lease.stopped_busy):
                return result
            # Our own scale-in stopped that local replica past its drain limit (counted
            # by the pool): the event goes to another replica without costing a retry of
            # the trigger's delivery spec, which is for the subscriber's failures.
        return result

    async def close(self) -> None:
        return None
