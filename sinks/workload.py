"""Delivery to a workload's replicas (the local process runtime).

``wait_ready`` is where an event for a workload at zero waits: it pokes the scaler
(which starts a replica at once) and returns when a replica is ready, before the
dispatcher counts an attempt, so no retry is burnt and no timeout runs while the
workload starts. ``send`` then takes the least busy ready replica with room (waiting
for room if all are at their concurrency), POSTs the event to it, and records the
service time the autoscaler's rate estimates are built from.
"""

from __future__ import annotations

import time

from eventing.delivery.sink import Outcome
from eventing.events import Event
from eventing.workloads.pool import ReplicaPool
from eventing.workloads.scaler import WorkloadScaler
from sinks.http import post_plain, prepare
from sinks.httpclient import Pool, Target


class WorkloadSink:
    def __init__(
        self, name: str, pool: ReplicaPool, scaler: WorkloadScaler, client: Pool, path: str = "/"
    ) -> None:
        self.target = f"workload:{name}"
        self.name = name
        self.replicas = pool
        self.scaler = scaler
        self.client = client
        self.path = path
        self._targets: dict[int, Target] = {}

    async def wait_ready(self) -> None:
        if self.replicas.ready_count() == 0:
            self.scaler.poke()
            await self.replicas.wait_ready()

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        headers, body = prepare(event, structured)
        replica = await self.replicas.acquire()
        target = self._targets.get(replica.port)
        if target is None:
            target = self._targets[replica.port] = Target.parse(
                f"http://127.0.0.1:{replica.port}{self.path}"
            )
        started = time.monotonic()
        try:
            result = await post_plain(self.client, target, headers, body, timeout)
        finally:
            await self.replicas.release(replica)
        if result.status is not None and 200 <= result.status < 300:
            now = time.monotonic()
            self.scaler.recorder.completion(
                now, service_time=now - started, work_after=max(0, self.scaler.backlog() - 1)
            )
        return result

    async def close(self) -> None:
        return None
