"""An adaptive bound on a trigger's in-flight attempts (AIMD, like TCP).

Why: a subscriber that answers 429/503 or slows down is overloaded; sending more
only makes it worse (Knative users hit this with ``containerConcurrency: 1`` sinks).
The limit halves on 429/503 or when latency rises well above its recent floor, and
grows by one per window of successes, never above the trigger's ``maxInFlight``.
"""

from __future__ import annotations

import asyncio
from collections import deque


class AdaptiveLimit:
    __slots__ = ("_floor", "_recent", "_seen", "_waiters", "in_use", "limit", "maximum")

    def __init__(self, maximum: int, initial: int | None = None) -> None:
        self.maximum = max(1, maximum)
        self.limit = float(min(self.maximum, initial or self.maximum))
        self.in_use = 0
        # Made on the first wait only: most limits never have a waiter (the dispatcher
        # parks its events instead), and with a thousand triggers an empty deque read
        # per acquire and release is one more cold object per event.
        self._waiters: deque[asyncio.Future[None]] | None = None
        self._floor = float("inf")
        self._recent: deque[float] = deque(maxlen=32)
        self._seen = 0

    def try_acquire(self) -> bool:
        """Take a slot if one is free now (nobody waiting); never waits."""
        if self.in_use < int(self.limit) and not self._waiters:
            self.in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.in_use < int(self.limit) and not self._waiters:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # we were handed a slot as we were cancelled
            else:
                waiters.remove(future)
            raise

    def resize(self, maximum: int) -> None:
        """A new maximum (a changed ``maxInFlight``); attempts in flight stay counted."""
        self.maximum = max(1, maximum)
        self.limit = min(self.limit, float(self.maximum))
        self._wake()

    def release(self) -> None:
        self.in_use -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.in_use < int(self.limit):
            future = waiters.popleft()
            if not future.done():
                self.in_use += 1
                future.set_result(None)

    def observe(self, status: int | None, seconds: float) -> None:
        """Adjust the limit from one finished attempt."""
        if status in (429, 503):
            self.limit = max(1.0, self.limit / 2)
            return
        if status is None or not 200 <= status < 300:
            return
        self._recent.append(seconds)
        self._floor = min(self._floor, seconds)
        self._seen += 1
        if self._seen % 16 == 0 and len(self._recent) >= 16:
            typical = sorted(self._recent)[len(self._recent) // 2]
            if typical > 4 * self._floor + 0.05:
                self.limit = max(1.0, self.limit * 0.9)
                self._floor = typical / 2  # forget a stale floor
                return
        if self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / max(1.0, self.limit))
            self._wake()
