"""Routing for a Kubernetes workload: every event goes to one address (the target's
Service by its cluster DNS name, or a URL the Workload gives), and Kubernetes picks the
pod. What is left for us is admission: at most ``concurrency`` events in flight per
ready replica, so a workload at zero, or one that is still starting, holds its events
in the broker (no attempt, no retry burnt) instead of piling them onto one pod.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from eventing.workloads.actuator import Endpoint


class ServiceRouter:
    def __init__(self, url: str, *, concurrency: int, ready: Callable[[], int]) -> None:
        self.url = url
        self.concurrency = concurrency
        self._ready = ready
        self._in_flight = 0
        self._changed = asyncio.Condition()
        self._endpoint = Endpoint(url)

    def ready_count(self) -> int:
        return self._ready()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _room(self) -> bool:
        return self._in_flight < self.concurrency * self._ready()

    async def wait_ready(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._ready() > 0)

    async def acquire(self) -> Endpoint:
        async with self._changed:
            await self._changed.wait_for(self._room)
            self._in_flight += 1
            return self._endpoint

    async def release(self, endpoint: Endpoint) -> None:
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify(1)

    async def changed(self) -> None:
        """The ready count may have changed (called by the actuator after observing)."""
        async with self._changed:
            self._changed.notify_all()
