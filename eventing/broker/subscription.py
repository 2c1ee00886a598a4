"""A trigger's stream over a store: fresh events from memory, the rest from disk.

Why two paths: on the hot path an event just committed is handed to the trigger's
dispatcher straight from memory, with no read back from SQLite. When the dispatcher
falls behind (the buffer is full) or after a restart, the subscription switches to
*spill* mode and pages pending events from the store in ``seq`` order until it has
caught up, then switches back. Every event carries its ``seq``; a cursor skips any
event seen twice across the switch, so none is handed out twice or skipped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import cast

from eventing.broker.base import Delivery, Receipt
from eventing.broker.store import Store
from eventing.events import Event

PAGE = 256


class StoreSubscription:
    def __init__(
        self,
        store: Store,
        broker: str,
        trigger: str,
        *,
        buffer_events: int = 2048,
        buffer_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.broker = broker
        self.trigger = trigger
        self._buffer: deque[Event] = deque()
        self._buffered_bytes = 0
        self._limit_events = buffer_events
        self._limit_bytes = buffer_bytes
        self._spill = True  # start by recovering whatever is pending on disk
        self._cursor = 0
        self._wake = asyncio.Event()
        self.listeners: list[Callable[[], None]] = []
        """Called on every new event (the autoscaler counts arrivals and is poked)."""
        self._ready: Callable[[], None] | None = None
        self._refilling = False

    def offer(self, event: Event) -> None:
        """Called after ``event`` was committed with a pending row for this trigger."""
        for listener in self.listeners:
            listener()
        if self._spill:
            self._wake.set()
            return
        size = len(event.data or b"")
        if (
            len(self._buffer) >= self._limit_events
            or self._buffered_bytes + size > self._limit_bytes
        ):
            self._spill = True
        else:
            self._buffer.append(event)
            self._buffered_bytes += size
            if self._ready is not None:
                self._ready()  # taken with take_nowait, without waking get()
                return
        self._wake.set()

    def push_to(self, ready: Callable[[], None]) -> bool:
        """Call ``ready`` (instead of waking :meth:`get`) once for each event put in
        memory, to be taken with :meth:`take_nowait`. Why: with events spread over
        a thousand triggers, each event would otherwise cost its dispatcher a task
        switch. :meth:`get` still pages from the store (and is woken for that)."""
        self._ready = ready
        return True

    def take_nowait(self) -> Delivery | None:
        """The next event if it is in memory now: offered there, or already read from
        the store by :meth:`get` (in spill mode the buffer holds only a page read back,
        in ``seq`` order from the cursor, so the rest of a page can be handed out
        without a ``get`` each); None when the buffer is empty or while a page is
        being read (what is offered meanwhile must not overtake it)."""
        if self._refilling or not self._buffer:
            return None  # (the pump asks no more than it was offered: rare)
        return self._pop()

    def _pop(self) -> Delivery | None:
        while self._buffer:
            event = self._buffer.popleft()
            self._buffered_bytes -= len(event.data or b"")
            if event.seq > self._cursor:
                self._cursor = event.seq
                return Delivery(event, event.seq)
        return None

    async def get(self) -> Delivery:
        while True:
            delivery = self._pop()
            if delivery is not None:
                return delivery
            if self._spill:
                self._refilling = True
                try:
                    await self._refill()
                finally:
                    self._refilling = False
                if self._buffer:
                    continue
            self._wake.clear()
            if not self._buffer and not self._spill:
                await self._wake.wait()

    async def _refill(self) -> None:
        events = await self.store.load_pending(self.trigger, self._cursor, PAGE)
        if len(events) == PAGE:
            self._prepend(events)
            return
        # Looks caught up: take fresh events from memory again, then read once more
        # to catch commits that landed between the read above and the switch.
        self._spill = False
        last = events[-1].seq if events else self._cursor
        more = await self.store.load_pending(self.trigger, last, PAGE)
        if len(more) == PAGE:
            # Still behind: what was offered meanwhile is on disk after a gap; drop it
            # from memory and keep paging, or the cursor would jump over the gap.
            self._spill = True
            self._buffer.clear()
            self._buffered_bytes = 0
        self._prepend(events + more)

    def _prepend(self, events: list[Event]) -> None:
        self._buffered_bytes += sum(len(e.data or b"") for e in events)
        self._buffer.extendleft(reversed(events))

    def ack(self, receipt: Receipt) -> None:
        """Mark the event done without waiting for the commit: the delivery slot is free
        at once, the ack commits with the next group (a crash before that only means a
        redelivery, which at-least-once allows). The receipt is the row's ``seq``."""
        self.store.ack_nowait(self.trigger, cast(int, receipt))

    async def dead_letter(
        self, receipt: Receipt, event: Event, *, attempts: int, reason: str, status: int | None
    ) -> None:
        event.seq = cast(int, receipt)
        await self.store.dead_letter(
            self.broker, self.trigger, event, attempts=attempts, reason=reason, status=status
        )

    async def backlog(self) -> int:
        return self.store.pending_count(self.trigger)

    def cached_backlog(self) -> int:
        return self.store.pending_count(self.trigger)

    def local_backlog(self) -> int:
        return self.store.pending_count(self.trigger)
