"""The ``Broker`` protocol (v2) every broker class implements, and what it hands out.

The protocol hides the class completely, so the dispatcher, the ingress, the admin
API and the autoscaler work the same over an SQLite file, a Kafka topic or a
RabbitMQ exchange:

- ``publish`` returns only once the events are durably accepted (an SQLite commit, a
  Kafka produce acknowledged by all in-sync replicas, a RabbitMQ publisher confirm);
- ``subscribe`` gives each trigger a :class:`Subscription` that hands out
  :class:`Delivery` objects: the event plus an opaque **receipt** (a row id, a
  partition/offset, a delivery tag) that only the issuing subscription understands;
- ``ack(receipt)`` marks one event done for that trigger; ``dead_letter(receipt, ...)``
  keeps it in the class's own dead-letter store and acks it, in that order;
- ``backlog()`` is async because a consumer group's lag or a queue's depth costs I/O;
  ``cached_backlog()`` is the last value read, for the gauges and the scaler;
- ``open``/``close`` bracket the class's connections and threads;
- triggers come and go while the broker runs (the reconciler, ``eventing.app.reconcile``):
  ``subscribe`` after ``open`` starts a trigger at the events published from then on
  (a new trigger does not see what was accepted before it was ready, as in Knative);
  ``refilter`` changes a trigger's filter and keeps its backlog; ``unsubscribe``
  stops routing to a trigger and releases its backlog (pending rows, consumer group,
  queue), after its dispatcher stopped.

What only some classes can do is a small separate Protocol, reached through a typed
attribute that is ``None`` when the class cannot (never a ``getattr`` probe):
:class:`DeadLetterQueue` (the built-in ``dlq:`` store, listed and replayed by the CLI).

Every class deduplicates on (``source``, ``id``) at ``publish`` through its
:attr:`Broker.dedup` (:mod:`eventing.broker.dedup`): an event whose key was accepted
within the window is not stored again and is counted as a ``duplicate`` drop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eventing.broker.dedup import Deduplicator
from eventing.broker.store import DeadLetter
from eventing.events import AttributeValue, Event

#: What a subscription needs to ack one event; opaque to everyone else.
Receipt = object
#: A named long-running loop of a broker class (consuming, reconnecting, reading lag),
#: which the composition root supervises like every other task.
BrokerTask = tuple[str, Callable[[], Awaitable[None]]]


class Filter(Protocol):
    """A trigger's filter, materialised once per trigger.

    Returns ``None`` when the event passes, else the reason it was dropped
    (``"filtered"``, or e.g. ``"cesql:math"`` when an expression erred), which the
    broker counts per trigger and reason.
    """

    def __call__(self, attributes: Mapping[str, AttributeValue], /) -> str | None: ...


@dataclass(slots=True)
class Delivery:
    """One event handed to a trigger's dispatcher, and how to say it is done."""

    event: Event
    receipt: Receipt


class Subscription(Protocol):
    """One trigger's stream of matched events."""

    trigger: str
    listeners: list[Callable[[], None]]
    """Called once per event that arrives for this trigger (the autoscaler counts
    arrivals); a class that learns of arrivals only on consume calls them then."""

    async def get(self) -> Delivery:
        """The next event to deliver; waits until there is one."""

    def ack(self, receipt: Receipt) -> None:
        """The event was delivered: remove it from the backlog. Never blocks; stored
        with the class's next commit (a crash before it only means a redelivery)."""

    async def dead_letter(
        self, receipt: Receipt, event: Event, *, attempts: int, reason: str, status: int | None
    ) -> None:
        """Keep ``event`` (with its error extensions) in the class's dead-letter store,
        then ack ``receipt``: returns once both are stored; never acks first."""

    async def backlog(self) -> int:
        """Matched and not yet acked (waiting plus in flight), read now (may do I/O)."""

    def cached_backlog(self) -> int:
        """The last value :meth:`backlog` read (exact for the embedded classes)."""

    def local_backlog(self) -> int:
        """The part of :meth:`cached_backlog` this process will deliver, for its own
        autoscaler when several processes serve the trigger: the lag of the Kafka
        partitions assigned here, or a RabbitMQ queue's depth divided by its consumers.
        The whole backlog when this process is the only consumer."""


@dataclass
class BrokerStatus:
    """What ``eventing status`` and readiness show of one broker."""

    ready: bool = True
    """False while the class cannot store (its server is unreachable)."""
    detail: str | None = None
    """Why it is not ready, or where it lives (never a secret)."""
    stored_events: int | None = None
    stored_bytes: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


class DeadLetterQueue(Protocol):
    """The built-in ``dlq:`` store of a broker class: listed, shown, replayed, deleted
    through the admin API. Several brokers may share one (the embedded classes share
    the SQLite file); the admin API reads each queue once."""

    async def list_dead_letters(
        self, trigger: str | None, limit: int, after_id: int = 0
    ) -> list[DeadLetter]: ...

    async def get_dead_letter(self, dl_id: int) -> DeadLetter | None: ...

    async def delete_dead_letters(self, ids: Sequence[int]) -> int: ...

    def depths(self) -> Mapping[str, int]:
        """Dead letters kept per trigger, as last known (no I/O)."""


class Publisher(Protocol):
    """What the ingress needs of a broker (an ingress worker's remote broker is one)."""

    key: str

    async def publish(self, events: Sequence[Event]) -> None:
        """Store ``events``; return once durably accepted. Raises ``StoreError``."""


class Broker(Publisher, Protocol):
    key: str
    broker_class: str
    durable: bool
    dead_letters: DeadLetterQueue | None
    """The class's ``dlq:`` store, or None when it has none."""
    dedup: Deduplicator
    """Deduplication on (source, id) at publish: configured (scopes, the broker's
    window, plain POSTs on or off) by the composition root before :meth:`open`."""

    def subscribe(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> Subscription:
        """A trigger's stream; before :meth:`open` (start) or after (a trigger added
        while running: then start its :meth:`trigger_tasks`). ``exact``
        holds attribute values every event passing ``event_filter`` has (what a server
        can filter on, e.g. a RabbitMQ headers binding); the filter still decides."""

    async def refilter(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> None:
        """Give a subscribed trigger a new filter; its backlog (what the old filter
        matched and is not yet delivered) stays and is delivered. Events published from
        now on are routed by the new filter (a class that binds on the server may need a
        moment for the new binding: :meth:`trigger_tasks`' loop applies it)."""

    async def unsubscribe(self, trigger: str) -> None:
        """The trigger was deleted: route nothing more to it and release its backlog
        (remove its pending events, delete its consumer group or queue). Called after
        its dispatcher stopped and its :meth:`trigger_tasks` were cancelled; bounded."""

    def trigger_tasks(self, trigger: str) -> list[BrokerTask]:
        """The loops that serve one trigger (a consumer), part of :meth:`tasks`; the
        composition root starts them for a trigger subscribed after :meth:`open` and
        cancels them before :meth:`unsubscribe`."""

    async def open(self) -> None:
        """Connect, declare what is missing, start the class's own I/O. A class whose
        server is unreachable still opens (status not ready, publish raising
        ``StoreError``) and connects by itself when the server comes back."""

    async def close(self) -> None:
        """Flush acks and stop; bounded. Runs after the tasks of :meth:`tasks` stopped."""

    def tasks(self) -> list[BrokerTask]:
        """The class's long-running loops, started by name after :meth:`open` and
        restarted with backoff when they fail (none for the embedded classes)."""

    async def replay(self, trigger: str, event: Event) -> None:
        """Put ``event`` back into one trigger's backlog (that trigger only)."""

    def drops(self) -> Mapping[tuple[str, str], int]:
        """Events not routed to a trigger, by (trigger, reason)."""

    def status(self) -> BrokerStatus: ...
