"""One loop callback per turn pumps every dispatcher that has events waiting in memory.

Why: the events of one ingested batch are spread over the triggers they match. With a
thousand triggers a committed batch of 100 events offers about 100 dispatchers one
event each, and a ``call_soon`` per dispatcher was a loop handle per event (plus, in
Python 3.11, a ``getpid`` system call in ``asyncio.get_running_loop``). A dispatcher
now registers its pump once while it has work (:meth:`PumpRound.add`) and a single
callback per loop turn runs every registered pump, in the order they registered.

A pump that registers again while the round runs (a place freed by an attempt that
ended synchronously) is run in the next turn, as its own ``call_soon`` was before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from weakref import WeakKeyDictionary

logger = logging.getLogger(__name__)

Pump = Callable[[], None]


class PumpRound:
    """The pumps to run in the next loop turn, all in one callback."""

    __slots__ = ("_loop", "_ready", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ready: list[Pump] = []
        self._scheduled = False

    def add(self, pump: Pump) -> None:
        """Run ``pump`` once in the next round (the caller registers it at most once
        until it has run: the dispatcher's ``_pump_soon`` flag)."""
        self._ready.append(pump)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        ready, self._ready = self._ready, []
        self._scheduled = False  # pumps added from here on go in the next turn
        for pump in ready:
            try:
                pump()
            except Exception:  # one failing pump must not starve the others
                logger.exception("a dispatcher's pump failed")


_ROUNDS: WeakKeyDictionary[asyncio.AbstractEventLoop, PumpRound] = WeakKeyDictionary()


def pump_round(loop: asyncio.AbstractEventLoop) -> PumpRound:
    """The round shared by every dispatcher of ``loop`` (made on first use; it goes
    with the loop)."""
    found = _ROUNDS.get(loop)
    if found is None:
        found = _ROUNDS[loop] = PumpRound(loop)
    return found
