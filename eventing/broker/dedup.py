"""Deduplication on (``source``, ``id``) per broker, within a window bounded by time and count.

Why at ingest and not at delivery: a redelivered webhook or an upstream message handed
back after a crash is the *same* CloudEvent (the spec makes ``source`` + ``id``
unique), and storing it twice would start every subscriber's work twice. The broker
remembers the keys it accepted for at most ``seconds`` and at most ``max_ids`` of them
(whichever bound is hit first: the count bounds memory, the time bounds how old a
redelivery may be and still be caught); a second event with a remembered key is
answered like the first (accepted) and not stored, counted as a drop with reason
``duplicate``.

Who is deduplicated is decided per event by :attr:`eventing.events.Event.dedup`, set
by whoever hands the event to the broker: a source's emitter sets its scope (the
source's own window), ``""`` when the source's ids do not come from upstream (they
could collide), and plain ingress POSTs and replies leave it ``None``, which means the
broker's own ``ingress`` setting (off by default, like Knative). A key is looked up in
every scope of the broker, so an event is a duplicate whichever door it came through.

Two copies of one key arriving at once: the second waits for the first's store to
finish (at most :data:`INFLIGHT_WAIT` seconds), then is a duplicate if the first was
stored, or is stored itself if the first failed, so a duplicate is never answered 202
for an event that ended up not stored.

Durability is the store's business: :class:`Claim` carries the rows to write (new keys,
keys evicted from memory) so the embedded durable class writes an event and its key
in one transaction, and :meth:`Deduplicator.load` refills the windows at open.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

from eventing.broker.store import SeenRow
from eventing.errors import StoreError
from eventing.events import Event

#: The drop reason of an event not stored because its (source, id) was seen.
DUPLICATE: Final = "duplicate"
#: The scope of plain ingress POSTs and replies (when the broker dedupes them).
INGRESS: Final = "ingress"
DEFAULT_MAX_IDS: Final = 100_000
DEFAULT_SECONDS: Final = 3600.0
MAX_MAX_IDS: Final = 10_000_000
MAX_SECONDS: Final = 30 * 86400.0
#: Longest wait for an in-flight copy of the same key before answering 503.
INFLIGHT_WAIT: Final = 30.0

#: A key longer than this (source and id together, in characters) is remembered by
#: its digest, so a window's memory is bounded by its count whatever ids arrive.
MAX_KEY_CHARS: Final = 512

Key = tuple[str, str]


def digest(key: Key) -> Key:
    """A long key as ("", SHA-256 of source and id): never equal to a real key (a
    CloudEvent's ``source`` is never empty), and a fixed 64 characters."""
    source, event_id = key
    joined = f"{len(source)}:{source}{event_id}".encode(errors="surrogatepass")
    return ("", hashlib.sha256(joined).hexdigest())


@dataclass(frozen=True, slots=True)
class DedupWindow:
    """How long and how many keys a scope remembers (whichever bound is hit first)."""

    max_ids: int = DEFAULT_MAX_IDS
    seconds: float = DEFAULT_SECONDS

    def __post_init__(self) -> None:
        if not 1 <= self.max_ids <= MAX_MAX_IDS:
            raise ValueError(f"max ids {self.max_ids} is not between 1 and {MAX_MAX_IDS}")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise ValueError(f"window of {self.seconds} s is not within (0, {MAX_SECONDS:g}]")


class SeenWindow:
    """Keys in acceptance order with the time each was accepted; evicted from the
    oldest end when over the count or past the age (amortised O(1) per key)."""

    __slots__ = ("keys", "name", "window")

    def __init__(self, name: str, window: DedupWindow) -> None:
        self.name = name
        self.window = window
        self.keys: OrderedDict[Key, float] = OrderedDict()

    def add(self, key: Key, at: float) -> None:
        """Remember ``key`` as the newest (call :meth:`expire` after a group of adds)."""
        keys = self.keys
        if key in keys:  # held but past the window: it moves to the newest end
            del keys[key]
        keys[key] = at

    def expire(self, now: float, evicted: list[Key]) -> None:
        keys, oldest, limit = self.keys, now - self.window.seconds, self.window.max_ids
        for _ in range(len(keys) - limit):  # over the count: the oldest go first
            evicted.append(keys.popitem(last=False)[0])
        while keys:
            first, at = next(iter(keys.items()))
            if at > oldest:
                return
            del keys[first]
            evicted.append(first)


@dataclass(slots=True, eq=False)
class Claim:
    """One publish's view: what to store, and the dedup rows to store with it."""

    fresh: list[Event] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)
    added: list[SeenRow] = field(default_factory=list)
    """Keys this publish claims (write them with the events)."""
    forgotten: list[tuple[str, str, str]] = field(default_factory=list)
    """(scope, source, id) evicted from memory since the last publish (delete them)."""
    keys: list[tuple[SeenWindow, Key, float]] = field(default_factory=list)
    now: float = 0.0
    done: asyncio.Future[bool] | None = None
    """Made only when another publish waits for this one."""


class Deduplicator:
    """The windows of one broker, and the keys being stored right now."""

    def __init__(
        self,
        window: DedupWindow | None = None,
        *,
        ingress: bool = False,
        durable: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window or DedupWindow()
        """The broker's window: the ingress scope's, and a source's unless it has one."""
        self.ingress = ingress
        """Dedupe events that carry no decision (plain POSTs, replies)."""
        self.enabled = True
        """False: nothing is deduplicated (the broker's ``eventing.local/dedup: false``)."""
        self.durable = durable
        """Keep the rows a durable store writes (:attr:`Claim.added`, ``forgotten``)."""
        self.clock = clock
        self.scopes: dict[str, SeenWindow] = {}
        self._inflight: dict[Key, Claim] = {}
        self._forgotten: list[tuple[str, str, str]] = []
        self._loaded = False

    def configure(self, window: DedupWindow, *, ingress: bool, enabled: bool = True) -> None:
        """The broker's own settings (its annotations): window, plain POSTs, on/off."""
        self.window, self.ingress, self.enabled = window, ingress, enabled
        if INGRESS in self.scopes:
            self.scope(INGRESS, window)

    def scope(self, name: str, window: DedupWindow | None = None) -> None:
        """Declare a scope (a source's name) with its own window, or the broker's."""
        seen = self.scopes.get(name)
        if seen is None:
            self.scopes[name] = SeenWindow(name, window or self.window)
            return
        seen.window = window or self.window
        self._expire(seen, self.clock())

    def remembered(self) -> int:
        return sum(len(s.keys) for s in self.scopes.values())

    def load(self, rows: Iterable[SeenRow]) -> None:
        """Refill the windows from a store, oldest first. The bounds are applied at the
        first publish, not here: the sources declare their scopes (and windows, which
        may be wider than the broker's) after the broker opened."""
        for scope, source, event_id, at in sorted(rows, key=lambda r: r[3]):
            seen = self._scope(scope)
            seen.keys[(source, event_id)] = at
        self._loaded = True

    def _expire_loaded(self) -> None:
        self._loaded = False
        now = self.clock()
        for seen in self.scopes.values():
            self._expire(seen, now)

    def _scope(self, name: str) -> SeenWindow:
        seen = self.scopes.get(name)
        if seen is None:
            seen = self.scopes[name] = SeenWindow(name, self.window)
        return seen

    def _expire(self, seen: SeenWindow, now: float) -> None:
        evicted: list[Key] = []
        seen.expire(now, evicted)
        if self.durable:
            self._forgotten.extend((seen.name, source, event_id) for source, event_id in evicted)

    def wants(self, events: Sequence[Event]) -> bool:
        """Whether any of ``events`` is to be deduplicated: when none is (plain POSTs
        by default), the broker skips :meth:`admit` and pays nothing more."""
        if not self.enabled:
            return False
        ingress = self.ingress
        for event in events:
            name = event.dedup
            if name or (name is None and ingress):
                return True
        return False

    def admit(self, events: Sequence[Event]) -> Admission:
        """``async with dedup.admit(events) as claim``: split ``events`` into fresh
        ones and duplicates; the body stores ``claim.fresh`` (with ``claim.added`` /
        ``claim.forgotten`` when durable). The claimed keys are remembered when the body
        returns, and released if it raises."""
        return Admission(self, events)

    async def _claim(self, events: Sequence[Event]) -> Claim:
        """A claim once no other publish is storing one of these keys (bounded wait)."""
        deadline = time.monotonic() + INFLIGHT_WAIT
        loop = asyncio.get_running_loop()
        while True:
            claim, waits = self._try_claim(events)
            if not waits:
                return claim
            self._release(claim, stored=False)
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreError("an event with the same source and id is still being stored")
            futures = []
            for other in waits:
                if other.done is None:
                    other.done = loop.create_future()
                futures.append(other.done)
            await asyncio.wait(futures, timeout=left)

    def _try_claim(self, events: Sequence[Event]) -> tuple[Claim, list[Claim]]:
        """The claim for ``events``, or the other claims to wait for first."""
        claim = Claim()
        waits: list[Claim] = []
        if not self.enabled:
            claim.fresh = list(events)
            return claim, waits
        if self._loaded:
            self._expire_loaded()
        now = claim.now = self.clock()
        scopes = self.scopes
        inflight = self._inflight
        fresh, keys_claimed = claim.fresh, claim.keys
        checks: list[tuple[OrderedDict[Key, float], float]] | None = None
        for event in events:
            name = event.dedup
            if name is None:
                name = INGRESS if self.ingress else ""
            if not name:
                fresh.append(event)
                continue
            attributes = event.attributes
            key = (str(attributes["source"]), str(attributes["id"]))
            if len(key[0]) + len(key[1]) > MAX_KEY_CHARS:
                key = digest(key)
            if checks is None:
                checks = [(s.keys, now - s.window.seconds) for s in scopes.values()]
            seen = False
            for keys, oldest in checks:
                at = keys.get(key)
                if at is not None and at > oldest:
                    seen = True
                    break
            if seen:
                claim.duplicates.append(event)
                continue
            other = inflight.get(key)
            if other is not None:
                if other is claim:  # twice in this batch
                    claim.duplicates.append(event)
                elif other not in waits:
                    waits.append(other)
                continue
            inflight[key] = claim
            window = scopes.get(name)
            if window is None:
                window = self._scope(name)
                checks = None  # a new scope to look in
            keys_claimed.append((window, key, now))
            if self.durable:
                claim.added.append((name, key[0], key[1], now))
            fresh.append(event)
        if keys_claimed and self._forgotten:
            claim.forgotten, self._forgotten = self._forgotten, []
        return claim, waits

    def _release(self, claim: Claim, *, stored: bool) -> None:
        if not claim.keys:
            return
        inflight = self._inflight
        touched: list[SeenWindow] = []
        for seen, key, at in claim.keys:
            del inflight[key]
            if stored:
                seen.add(key, at)
                if seen not in touched:
                    touched.append(seen)
        for seen in touched:  # once per scope and claim, not per key
            self._expire(seen, claim.now)
        if not stored and claim.forgotten:  # not written: try again with the next one
            self._forgotten.extend(claim.forgotten)
        if claim.done is not None and not claim.done.done():
            claim.done.set_result(stored)


class Admission:
    """The context manager of :meth:`Deduplicator.admit` (a class, not an async
    generator: this is on every deduplicated publish, and an async generator costs
    several microseconds more to start and finish)."""

    __slots__ = ("claim", "dedup", "events")

    def __init__(self, dedup: Deduplicator, events: Sequence[Event]) -> None:
        self.dedup = dedup
        self.events = events
        self.claim: Claim | None = None

    async def __aenter__(self) -> Claim:
        dedup = self.dedup
        claim, waits = dedup._try_claim(self.events)
        if waits:  # another publish is storing one of these keys: wait for it
            dedup._release(claim, stored=False)
            claim = await dedup._claim(self.events)
        self.claim = claim
        return claim

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        claim = self.claim
        assert claim is not None
        self.dedup._release(claim, stored=exc_type is None)
        if exc_type is None:  # answered as accepted, not stored: what ``tail`` shows
            for event in claim.duplicates:
                event.duplicate = True
