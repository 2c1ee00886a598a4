"""The ``Broker`` protocol every broker class implements, and the filter it applies.

Designed so Kafka and RabbitMQ classes can follow: ``publish`` returns only once the
events are durably accepted (a Kafka produce with ``acks=all``, a RabbitMQ publisher
confirm, or an SQLite commit); ``subscribe`` gives each trigger its own stream with
an exact ``backlog`` (a consumer group's lag, a queue's depth, or the count of
pending rows); ``ack`` marks one event done for that trigger only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from eventing.events import AttributeValue, Event


class Filter(Protocol):
    """A trigger's filter, materialised once per trigger.

    Returns ``None`` when the event passes, else the reason it was dropped
    (``"filtered"``, or e.g. ``"cesql:math"`` when an expression erred), which the
    broker counts per trigger and reason.
    """

    def __call__(self, attributes: Mapping[str, AttributeValue], /) -> str | None: ...


class Subscription(Protocol):
    """One trigger's stream of matched events."""

    trigger: str

    async def get(self) -> Event:
        """The next event to deliver; waits until there is one."""

    async def ack(self, event: Event) -> None:
        """``event`` was delivered (or dead-lettered): remove it from the backlog."""

    def ack_nowait(self, event: Event) -> None:
        """As :meth:`ack`, from a callback that cannot await; stored with the next
        commit (a crash before it only means a redelivery)."""

    async def dead_letter(
        self, event: Event, *, attempts: int, reason: str, status: int | None
    ) -> None:
        """Keep ``event`` in the built-in dead-letter store and ack it, atomically."""

    def backlog(self) -> int:
        """Matched and not yet acked (waiting plus in flight)."""


class Broker(Protocol):
    key: str
    broker_class: str
    durable: bool

    def subscribe(self, trigger: str, event_filter: Filter) -> Subscription: ...

    async def publish(self, events: Sequence[Event]) -> None:
        """Store ``events``; return once durably accepted. Raises ``StoreError``."""

    def drops(self) -> Mapping[tuple[str, str], int]:
        """Events not routed to a trigger, by (trigger, reason)."""
