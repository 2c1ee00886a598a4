"""The bound on events a dispatcher holds (taken from the subscription, not finished).

Why a gate of our own: the dispatcher's run loop is its only waiter and the pump
takes places synchronously, so ``asyncio.Semaphore`` (a future per waiter, fairness
bookkeeping) costs more than it gives.
"""

from __future__ import annotations

import asyncio


class Gate:
    """A counting gate cheaper than ``asyncio.Semaphore`` for one waiter (the run loop)."""

    __slots__ = ("_free", "_opened")

    def __init__(self, size: int) -> None:
        self._free = size
        self._opened = asyncio.Event()

    @property
    def free(self) -> int:
        return self._free

    async def wait_free(self) -> None:
        """Until a place is free (not taking it: the pump may take it meanwhile)."""
        while self._free <= 0:
            self._opened.clear()
            await self._opened.wait()

    def take(self) -> None:
        """Take a place; may go one below zero (the run loop's event that was being
        fetched when the pump took the last place): the bound is held within one."""
        self._free -= 1

    def release(self) -> None:
        self._free += 1
        if self._free == 1:
            self._opened.set()

    def resize(self, delta: int) -> None:
        """Grow (or shrink) the gate by ``delta`` places; held places stay held."""
        self._free += delta
        if self._free > 0:
            self._opened.set()
