"""The age of the oldest event a trigger has not finished, through the broker
protocol only: a :class:`~eventing.broker.base.Subscription` wrapped so that every
event handed out is remembered (receipt -> arrival time) until it is acked or
dead-lettered.

Why this is the oldest of the whole backlog and not only of what is in flight: a
subscription hands events out in arrival order and the dispatcher takes the next one
as soon as it has room, so anything still waiting in the broker arrived after every
event already handed out. When nothing is handed out the age is 0 if the backlog is
empty, and unknown (``None``, no sample) otherwise, for the moment between an
arrival and the dispatcher taking it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from eventing.broker.base import Delivery, Receipt, Subscription
from eventing.delivery import stamps
from eventing.delivery.dispatcher import Pushing
from eventing.events import Event


def arrival(event: Event) -> float | None:
    """When the broker accepted ``event`` (epoch seconds), if known: the dispatcher's
    reading, parsed at most once per event (:func:`eventing.delivery.stamps.arrival`)."""
    return stamps.arrival(event)


class DeliveryObserver(Protocol):
    """Told when an event is handed out and when it is finished (the tracer)."""

    def started(self, trigger: str, receipt: Receipt, event: Event) -> None: ...

    def finished(self, trigger: str, receipt: Receipt, ok: bool) -> None: ...


class AgingSubscription:
    """A subscription that knows the arrival time of each event it handed out."""

    def __init__(self, inner: Subscription, clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.trigger = inner.trigger
        self.listeners = inner.listeners
        self.clock = clock
        self._out: dict[Receipt, float] = {}
        self.observer: DeliveryObserver | None = None
        self._take: Callable[[], Delivery | None] = lambda: None

    async def get(self) -> Delivery:
        return self._handed(await self.inner.get())

    def push_to(self, ready: Callable[[], None]) -> bool:
        """Forwarded to a subscription that pushes (see ``Dispatcher._pump``)."""
        inner = self.inner
        if not isinstance(inner, Pushing) or not inner.push_to(ready):
            return False
        self._take = inner.take_nowait
        return True

    def take_nowait(self) -> Delivery | None:
        delivery = self._take()
        return None if delivery is None else self._handed(delivery)

    def _handed(self, delivery: Delivery) -> Delivery:
        when = arrival(delivery.event)
        if when is not None:
            try:  # noqa: SIM105 - per event: cheaper than contextlib.suppress
                self._out[delivery.receipt] = when
            except TypeError:  # an unhashable receipt: this class cannot be aged
                pass
        if self.observer is not None:
            self.observer.started(self.trigger, delivery.receipt, delivery.event)
        return delivery

    def _done(self, receipt: Receipt) -> None:
        try:  # noqa: SIM105 - per event: cheaper than contextlib.suppress
            self._out.pop(receipt, None)
        except TypeError:
            pass

    def ack(self, receipt: Receipt) -> None:
        self._done(receipt)
        self.inner.ack(receipt)
        if self.observer is not None:
            self.observer.finished(self.trigger, receipt, True)

    async def dead_letter(
        self, receipt: Receipt, event: Event, *, attempts: int, reason: str, status: int | None
    ) -> None:
        await self.inner.dead_letter(
            receipt, event, attempts=attempts, reason=reason, status=status
        )
        self._done(receipt)
        if self.observer is not None:
            self.observer.finished(self.trigger, receipt, False)

    async def backlog(self) -> int:
        return await self.inner.backlog()

    def cached_backlog(self) -> int:
        return self.inner.cached_backlog()

    def local_backlog(self) -> int:
        return self.inner.local_backlog()

    def oldest_age(self) -> float | None:
        """Seconds since the oldest unfinished event arrived: 0 with an empty backlog,
        None when the backlog is not empty but nothing is handed out yet."""
        if self._out:
            return max(0.0, self.clock() - min(self._out.values()))
        return 0.0 if self.inner.cached_backlog() == 0 else None
