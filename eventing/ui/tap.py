"""A bounded, in-process fan-out of the events entering the brokers.

Ingest calls :meth:`Tap.offer` after a publish was stored. What that costs on the hot
path is fixed and small whatever the watchers do: a counter per broker, one append to
a ring of recent events (attributes only, never data), and one ``put_nowait`` per
connected watcher. A watcher whose queue is full loses the event, and the loss is
counted for that watcher (and in total): a slow ``eventing tail`` or a stalled browser
can never slow or block ingest. Filtering and explaining happen later, in each
watcher's own task.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from eventing.events import AttributeValue, Event

#: Events a watcher may fall behind by before it loses them.
WATCHER_QUEUE = 1000
#: Watchers at once (each costs a ``put_nowait`` per event).
MAX_WATCHERS = 16
#: Recent events kept for ``explain --id`` (attributes only).
RECENT = 2000


#: What ingest records per event: (at, broker, attributes, data bytes, duplicate), a
#: plain tuple because building it is on the hot path; :class:`Seen` names its fields.
Raw = tuple[float, str, Mapping[str, AttributeValue], int, bool]
#: (attributes, data bytes) of events known without their data (an ingress worker's).
Sized = Sequence[tuple[dict[str, AttributeValue], int]]


class Seen(NamedTuple):
    """One event as it entered a broker (made from a :data:`Raw` by whoever reads it)."""

    at: float
    broker: str
    attributes: Mapping[str, AttributeValue]
    data_bytes: int
    duplicate: bool = False
    """Accepted but not stored: the broker had stored its (source, id) before."""


@dataclass(eq=False)
class Watcher:
    """One consumer of the fan-out, with its own bounded queue and drop count."""

    queue: asyncio.Queue[Raw] = field(default_factory=lambda: asyncio.Queue(WATCHER_QUEUE))
    dropped: int = 0


class Tap:
    def __init__(self, recent: int = RECENT, max_watchers: int = MAX_WATCHERS) -> None:
        self.watchers: set[Watcher] = set()
        self.recent: deque[Raw] = deque(maxlen=recent)
        self._deferred: deque[tuple[float, str, int, Callable[[], Sized]]] = deque()
        """Batches from ingress workers not decoded yet (:meth:`offer_later`), at most
        about as many events as :attr:`recent` keeps."""
        self._deferred_count = 0
        self.entered: dict[str, int] = {}
        """Events stored per broker since start (the dashboard's ingest rates)."""
        self.dropped = 0
        """Events lost by watchers that fell behind, all watchers together."""
        self.max_watchers = max_watchers
        self.listeners: list[Callable[[str, Sequence[Event]], None]] = []
        """Also told of every publish (the optional OpenTelemetry exporter)."""

    def offer(self, broker: str, events: Sequence[Event]) -> None:
        """``events`` were published to ``broker`` (stored, or dropped as duplicates of
        stored ones, :attr:`Event.duplicate`). Never blocks, never raises for a watcher."""
        for listener in self.listeners:
            listener(broker, events)
        now = time.time()
        seen: list[Raw] = [
            (now, broker, e.attributes, len(e.data or b""), e.duplicate) for e in events
        ]
        self._seen(broker, seen)

    def offer_later(self, broker: str, count: int, items: Callable[[], Sized]) -> None:
        """``count`` events stored by an ingress worker, whose (attributes, data size)
        ``items()`` decodes: at once when somebody watches or listens, else only when
        :meth:`find` looks (most are never looked at). Counted now either way; a
        ``ValueError`` from ``items()`` loses those events for the tap only."""
        if self.listeners or self.watchers:
            try:
                decoded = items()
            except ValueError:
                return
            self.offer_sized(broker, decoded)
            return
        self.entered[broker] = self.entered.get(broker, 0) + count
        deferred = self._deferred
        deferred.append((time.time(), broker, count, items))
        self._deferred_count += count
        limit = self.recent.maxlen or 0
        while deferred and self._deferred_count - deferred[0][2] >= limit:
            self._deferred_count -= deferred.popleft()[2]

    def offer_sized(self, broker: str, items: Sized) -> None:
        """:meth:`offer` for events known by their attributes and data size (stored by
        an ingress worker, which sends no data over: the tap keeps none)."""
        if self.listeners:
            events = [Event(attributes) for attributes, _ in items]
            for listener in self.listeners:
                listener(broker, events)
        now = time.time()
        self._seen(broker, [(now, broker, attributes, size, False) for attributes, size in items])

    def _seen(self, broker: str, seen: list[Raw]) -> None:
        duplicates = sum(raw[4] for raw in seen)  # almost always 0
        entered = self.entered
        entered[broker] = entered.get(broker, 0) + len(seen) - duplicates
        self.recent.extend(seen)
        for watcher in self.watchers:
            queue = watcher.queue
            for item in seen:
                try:
                    queue.put_nowait(item)
                except asyncio.QueueFull:
                    watcher.dropped += 1
                    self.dropped += 1

    @contextmanager
    def watch(self, queue_size: int = WATCHER_QUEUE) -> Iterator[Watcher]:
        """A new watcher, removed again on exit; check :meth:`full` first."""
        watcher = Watcher(asyncio.Queue(queue_size))
        self.watchers.add(watcher)
        try:
            yield watcher
        finally:
            self.watchers.discard(watcher)

    def full(self) -> bool:
        return len(self.watchers) >= self.max_watchers

    def find(self, event_id: str, broker: str | None = None) -> Seen | None:
        """The most recent stored event with this id (on ``broker`` if given); a
        duplicate, not stored, is not what ``explain --id`` means."""
        found: Raw | None = None
        for raw in reversed(self.recent):
            if raw[2].get("id") == event_id and broker in (None, raw[1]) and not raw[4]:
                found = raw
                break
        for at, on, _, items in reversed(self._deferred):
            if found is not None and found[0] > at:
                break
            if broker not in (None, on):
                continue
            try:
                decoded = items()
            except ValueError:
                continue
            for attributes, size in reversed(decoded):
                if attributes.get("id") == event_id:
                    return Seen(at, on, attributes, size)
        return Seen(*found) if found is not None else None
