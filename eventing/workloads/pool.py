"""A workload's replicas: scale to a count, route to the least busy, replace crashes.

Routing: an event goes to the ready replica with the fewest events in flight, never
beyond ``concurrency`` per replica; when none has room, the caller waits here (not in
the dispatcher's retry loop), so an event waiting for capacity burns no retry and no
timeout. Scale-in follows :func:`eventing.autoscaler.scalein.plan_scale_in`: replicas
still starting first, then idle ones; a busy replica is only ever drained (no new
events, stopped once its in-flight events are done), and stopped busy only after
``max_drain`` seconds, its events then redelivered and counted by reason. A draining
replica that has not been signalled is taken back when the count goes up again, so a
quick scale-in then scale-out neither kills nor duplicates work. A replica that exits
on its own is replaced with exponential backoff.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from eventing.autoscaler.scalein import (
    DRAIN_LIMIT_REASON,
    ReplicaLoad,
    plan_scale_in,
)
from eventing.workloads.guardian import Guardian
from eventing.workloads.replica import Replica, ReplicaConfig

logger = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
STABLE_AFTER = 30.0


class ReplicaPool:
    def __init__(
        self,
        config: ReplicaConfig,
        *,
        concurrency: int,
        guardian: Guardian,
        on_ready: Callable[[Replica], None] | None = None,
        output: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.concurrency = concurrency
        self.guardian = guardian
        self.replicas: list[Replica] = []
        self.desired = 0
        self.cold_starts = 0
        self.crashes = 0
        self.redelivered: dict[str, int] = {}
        """Events redelivered because their replica was stopped busy, by reason."""
        self.revived = 0
        self._numbers = itertools.count(1)
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_ready = on_ready
        self._output = output
        self._crash_streak = 0
        self._replacing = False
        self._closed = False

    # -- counts --------------------------------------------------------------------

    def count(self, state: str) -> int:
        return sum(1 for r in self.replicas if r.state == state)

    @property
    def active(self) -> list[Replica]:
        """Replicas that are or will be capacity (starting or ready)."""
        return [r for r in self.replicas if r.state in ("starting", "ready")]

    @property
    def in_flight(self) -> int:
        return sum(r.in_flight for r in self.replicas)

    # -- scaling -------------------------------------------------------------------

    def scale_to(self, replicas: int) -> None:
        if self._closed:
            return
        self.desired = replicas
        active = self.active
        if replicas > len(active):
            missing = replicas - len(active)
            for replica in self._revivable()[:missing]:
                if replica.revive():
                    self.revived += 1
                    missing -= 1
            for _ in range(missing):
                self._spawn(self._start_one(), "start")
            if missing < replicas - len(active):
                self._spawn(self._notify(), "notify")
        elif replicas < len(active):
            for victim in self._victims(active, len(active) - replicas):
                self._spawn(self._stop_one(victim), "stop")

    def _revivable(self) -> list[Replica]:
        """Draining replicas still working and not signalled, busiest first."""
        draining = [
            r
            for r in self.replicas
            if r.state == "draining" and not r.signalled and r.ready_at is not None
        ]
        return sorted(draining, key=lambda r: -r.in_flight)

    def _victims(self, active: list[Replica], n: int) -> list[Replica]:
        loads = [
            ReplicaLoad(
                r.number,
                "starting" if r.state == "starting" else "ready",
                r.in_flight,
                r.created,
            )
            for r in active
        ]
        by_number = {r.number: r for r in active}
        chosen = [by_number[key] for key in plan_scale_in(loads, n).chosen]
        for victim in chosen:
            victim.mark_draining()  # no new events from this moment
        return chosen

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.config.workload} {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        replica = Replica(
            self.config, next(self._numbers), on_exit=self._exited, output=self._output
        )
        if not self.ready_count():
            self.cold_starts += 1
        self.replicas.append(replica)
        try:
            await replica.start()
        except OSError as exc:
            logger.error("cannot start a replica of %s: %s", self.config.workload, exc)
            replica.state = "crashed"
            self._forget(replica)
            self._schedule_replacement()
            return
        assert replica.pgid is not None
        self.guardian.watch(replica.pgid)
        if await replica.wait_ready():
            logger.info(
                "replica %s ready on port %d in %.0f ms",
                replica.name,
                replica.port,
                1000 * (time.monotonic() - replica.created),
            )
            if self.on_ready is not None:
                self.on_ready(replica)
            await self._notify()
        elif replica.state == "starting":  # startup timeout: treat as a crash
            replica.kill()
            self.crashes += 1
            self._schedule_replacement()

    async def _stop_one(self, replica: Replica) -> None:
        """Drain (up to ``max_drain``), then stop; unless revived meanwhile."""
        limit = self.config.max_drain
        if replica.in_flight:
            outcome = await replica.drain(limit)
            if outcome == "revived":
                return
            if outcome == "expired":
                held = replica.in_flight
                replica.stopped_busy = held
                self.redelivered[DRAIN_LIMIT_REASON] = (
                    self.redelivered.get(DRAIN_LIMIT_REASON, 0) + held
                )
                logger.warning(
                    "replica %s still had %d event(s) after draining %.0f s (maxDrainSeconds):"
                    " stopping it; they will be redelivered",
                    replica.name,
                    held,
                    limit,
                )
        await replica.terminate()
        self._forget(replica)

    def _exited(self, replica: Replica) -> None:
        if replica.state == "crashed":
            self.crashes += 1
            lived = time.monotonic() - (replica.ready_at or time.monotonic())
            self._crash_streak = 0 if lived > STABLE_AFTER else self._crash_streak + 1
            self._forget(replica)
            self._schedule_replacement()
        if not self._closed:
            self._spawn(self._notify(), "notify")

    def _forget(self, replica: Replica) -> None:
        if replica in self.replicas:
            self.replicas.remove(replica)
        if replica.pgid is not None:
            self.guardian.unwatch(replica.pgid)

    def _schedule_replacement(self) -> None:
        if self._replacing or self._closed:
            return
        self._replacing = True
        delay = min(MAX_BACKOFF, 0.1 * 2**self._crash_streak)

        async def replace() -> None:
            await asyncio.sleep(delay)
            self._replacing = False
            self.scale_to(self.desired)

        logger.warning("replacing a replica of %s in %.1fs", self.config.workload, delay)
        self._spawn(replace(), "replace")

    # -- routing -------------------------------------------------------------------

    def ready_count(self) -> int:
        return self.count("ready")

    async def wait_ready(self) -> None:
        """Return once at least one replica is ready."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.ready_count() > 0 or self._closed)

    async def acquire(self) -> Replica:
        """The ready replica with the fewest in flight, once one has room; leased."""
        async with self._changed:
            while True:
                best = self._least_busy()
                if best is not None:
                    best.lease()
                    return best
                await self._changed.wait()

    def _least_busy(self) -> Replica | None:
        best: Replica | None = None
        for r in self.replicas:
            if (
                r.state == "ready"
                and r.in_flight < self.concurrency
                and (best is None or r.in_flight < best.in_flight)
            ):
                best = r
        return best

    async def release(self, replica: Replica) -> None:
        replica.release()
        await self._notify(all_waiters=False)

    async def _notify(self, all_waiters: bool = True) -> None:
        async with self._changed:
            if all_waiters:
                self._changed.notify_all()
            else:
                self._changed.notify(1)

    # -- shutdown ------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every replica (draining in-flight events first) and every task."""
        self._closed = True
        self.desired = 0
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Shutdown is bounded: in-flight events get the grace period, not maxDrainSeconds
        # (events not acknowledged stay in the broker and are delivered after restart).
        grace = self.config.grace_period
        await asyncio.gather(
            *(r.stop(drain=True, drain_limit=grace) for r in list(self.replicas)),
            return_exceptions=True,
        )
        for replica in list(self.replicas):
            self._forget(replica)
        await self._notify()
