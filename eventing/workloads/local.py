"""The local process runtime behind the :class:`~eventing.workloads.actuator.Actuator`
and :class:`~eventing.workloads.actuator.Router` protocols.

A thin wrapper: :class:`~eventing.workloads.pool.ReplicaPool` already scales, routes
(least busy ready replica with room) and drains on scale-in; this class only adapts it
to the two protocols, so the pool's internals can change without the scaler or the
sink noticing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from eventing.workloads.actuator import Endpoint, ReplicaState
from eventing.workloads.guardian import Guardian
from eventing.workloads.pool import ReplicaPool
from eventing.workloads.replica import Replica, ReplicaConfig


class LocalActuator:
    """Replicas as local subprocesses; both the actuator and the router."""

    def __init__(self, config: ReplicaConfig, *, concurrency: int, guardian: Guardian) -> None:
        self.pool = ReplicaPool(config, concurrency=concurrency, guardian=guardian)
        self._ready_callbacks: list[Callable[[float], None]] = []
        self.pool.on_ready = self._replica_ready

    # -- Actuator ------------------------------------------------------------------

    @property
    def desired(self) -> int:
        return self.pool.desired

    async def scale_to(self, replicas: int) -> None:
        self.pool.scale_to(replicas)

    def count(self, state: ReplicaState) -> int:
        return self.pool.count(state)

    @property
    def error(self) -> str | None:
        return None

    def details(self) -> dict[str, Any]:
        return {
            "runtime": "local",
            "coldStarts": self.pool.cold_starts,
            "crashes": self.pool.crashes,
            "replicas": [
                {"name": r.name, "port": r.port, "state": r.state, "inFlight": r.in_flight}
                for r in self.pool.replicas
            ],
        }

    def on_ready(self, callback: Callable[[float], None]) -> None:
        self._ready_callbacks.append(callback)

    def _replica_ready(self, replica: Replica) -> None:
        startup = time.monotonic() - replica.created
        for callback in self._ready_callbacks:
            callback(startup)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.pool.close()

    # -- Router --------------------------------------------------------------------

    def ready_count(self) -> int:
        return self.pool.ready_count()

    @property
    def in_flight(self) -> int:
        return self.pool.in_flight

    async def wait_ready(self) -> None:
        await self.pool.wait_ready()

    async def acquire(self) -> Endpoint:
        replica = await self.pool.acquire()
        return Endpoint(f"http://127.0.0.1:{replica.port}", replica)

    async def release(self, endpoint: Endpoint) -> None:
        assert isinstance(endpoint.lease, Replica)
        await self.pool.release(endpoint.lease)
