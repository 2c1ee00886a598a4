"""The per-host connection limit of the delivery client, shared by every dispatcher,
with one first-in first-out queue of what waits for a slot.

Why a queue of callbacks beside the queue of futures: with a thousand triggers
delivering to one host, the host's limit (256 connections) is reached long before
any trigger's own ``maxInFlight``. A delivery waiting for a slot as a coroutine is a
task per event; a dispatcher instead registers *itself* once (a callback) and keeps
its events parked, and when slots free up the queue is served in one loop turn
(:meth:`HostSlots._drain`): a waiting coroutine is handed its slot, a waiting
dispatcher is called and may take one slot with :meth:`HostSlots.take` (then it
queues again behind the others if it has more to send). So slots go round the
waiters in order, and a dispatcher whose own attempt just ended cannot take the
freed slot ahead of those already waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

Key = tuple[str, int]
Wake = Callable[[], None]


class NoSlotError(Exception):
    """The wait for a slot ended without one (the client stopped queueing)."""


class HostSlots:
    """At most ``limit`` slots per host; FIFO of waiters per host."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy: dict[Key, int] = {}
        self._queues: dict[Key, deque[asyncio.Future[bool] | Wake]] = {}
        self._wanted: set[Key] = set()
        self._drain_soon: asyncio.Handle | None = None
        self._granted: Key | None = None
        self.queueing = True

    def full(self, key: Key) -> bool:
        """No slot for a newcomer: all taken, or others wait before it (unless the
        one asking is the waiter being served right now)."""
        if self.busy.get(key, 0) >= self.limit:
            return True
        return bool(self._queues.get(key)) and self._granted != key

    def take(self, key: Key) -> bool:
        """Take a slot now if there is one for a newcomer; never waits."""
        if self.full(key):
            return False
        self.busy[key] = self.busy.get(key, 0) + 1
        if self._granted == key:
            self._granted = None  # one slot per turn in the queue
        return True

    def taken(self, key: Key) -> None:
        """Count a slot taken by a caller that has just seen :meth:`full` say False in
        the same synchronous step (the delivery fast path): :meth:`take` without its
        second check."""
        self.busy[key] = self.busy.get(key, 0) + 1
        if self._granted == key:
            self._granted = None  # one slot per turn in the queue

    def release(self, key: Key) -> None:
        self.busy[key] -= 1
        if self._queues.get(key):
            self._schedule(key)

    def when_free(self, key: Key, wake: Wake) -> bool:
        """Queue ``wake`` to be called once, in turn, when ``key`` has a slot for it
        (it may then :meth:`take` one). False, queueing nothing, when there is no
        need to wait (a slot is free for a newcomer) or the client stopped queueing."""
        if not self.queueing or not self.full(key):
            return False
        queue = self._queues.get(key)
        if queue is None:  # (not setdefault: a new deque per call, made for nothing)
            queue = self._queues[key] = deque()
        queue.append(wake)
        if self.busy.get(key, 0) < self.limit:  # full only by others queued: serve them
            self._schedule(key)
        return True

    async def acquire(self, key: Key, deadline: float) -> None:
        """Take a slot, waiting in turn until ``deadline`` (``TimeoutError``); raises
        :class:`NoSlotError` when the client stops queueing."""
        if self.take(key):
            return
        if not self.queueing:
            raise NoSlotError
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        queue = self._queues.setdefault(key, deque())
        queue.append(future)
        self._schedule(key)
        try:
            async with asyncio.timeout_at(deadline):
                granted = await future
        except BaseException:
            if future.done() and not future.cancelled():
                if future.result():
                    self.release(key)  # handed a slot as the wait ended
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(future)
            raise
        if not granted:
            raise NoSlotError

    def stop_queueing(self) -> None:
        """Every waiter gives up now and none queues from now on: waiting coroutines
        get :class:`NoSlotError`; waiting dispatchers are dropped (they stop too)."""
        self.queueing = False
        for queue in self._queues.values():
            while queue:
                entry = queue.popleft()
                if isinstance(entry, asyncio.Future) and not entry.done():
                    # A result, not an exception: no traceback cycle per waiter.
                    entry.set_result(False)
        self._queues.clear()
        if self._drain_soon is not None:
            self._drain_soon.cancel()
            self._drain_soon = None

    def _schedule(self, key: Key) -> None:
        if self.busy.get(key, 0) >= self.limit:
            return  # the next release schedules it
        self._wanted.add(key)
        if self._drain_soon is None:
            self._drain_soon = asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        """Serve the waiters of every host with free slots, in order, in this turn."""
        self._drain_soon = None
        wanted, self._wanted = self._wanted, set()
        for key in wanted:
            queue = self._queues.get(key)
            while queue and self.busy.get(key, 0) < self.limit:
                entry = queue.popleft()
                if isinstance(entry, asyncio.Future):
                    if not entry.done():
                        self.busy[key] = self.busy.get(key, 0) + 1
                        entry.set_result(True)
                    continue
                self._granted = key
                try:
                    entry()
                except Exception:
                    logger.exception("a waiter for a connection to %s:%s failed", *key)
                finally:
                    self._granted = None
