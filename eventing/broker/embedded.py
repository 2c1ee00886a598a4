"""The embedded broker classes (durable SQLite, or in-memory) over a shared store.

Routing happens once, at publish: each trigger's materialised filter runs on the
event's attributes and the event is stored with one pending row per matching
trigger. That is what makes each trigger's backlog exact, keeps a trigger from ever
seeing an event its filter rejects (even after a crash), and means an event no
trigger wants is never written at all (it is counted as dropped, not stored).

Several durable brokers share one SQLite file (one group commit on the event loop
for all of them): :class:`SharedStore` opens it once, with every trigger of every
broker on it, when the first of them opens, and closes it when the last one closes.

Delivery starts at the commit, the answer waits for durability: ``publish`` hands the
store a ``committed`` callback that offers the events to their triggers' subscriptions
as soon as the store has committed them, and returns (the ingress answers 202) only
once the store says they are durable (for the SQLite store with FULL durability: after
the fsync of the WAL, which the dispatch no longer waits for). Deduplication claims are
released only when ``publish`` returns, so a concurrent copy of an event still waits
until the first copy is durable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from eventing.broker.base import BrokerStatus, BrokerTask, DeadLetterQueue, Filter
from eventing.broker.dedup import DUPLICATE, Deduplicator
from eventing.broker.index import Router, Routing
from eventing.broker.store import DeadLetter, Routed, SeenRow, Store
from eventing.broker.subscription import StoreSubscription
from eventing.events import Event


class SharedStore:
    """One store and the brokers on it; opened by the first, closed by the last."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.brokers: list[EmbeddedBroker] = []
        self._open = 0

    @property
    def opened(self) -> bool:
        return self._open > 0

    async def acquire(self) -> None:
        if self._open == 0:
            await self.store.open([t for b in self.brokers for t in b.triggers()])
        self._open += 1

    async def release(self, broker: EmbeddedBroker | None = None) -> None:
        self._open -= 1
        if broker is not None and broker in self.brokers:
            self.brokers.remove(broker)  # a broker removed while running
        if self._open == 0:
            await self.store.close()


class StoreDeadLetters:
    """A store's dead letters as a :class:`DeadLetterQueue`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def list_dead_letters(
        self, trigger: str | None, limit: int, after_id: int = 0
    ) -> list[DeadLetter]:
        return await self.store.list_dead_letters(trigger, limit, after_id)

    async def get_dead_letter(self, dl_id: int) -> DeadLetter | None:
        return await self.store.get_dead_letter(dl_id)

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        return await self.store.delete_dead_letters(ids)

    def depths(self) -> Mapping[str, int]:
        return self.store.stats().dead_letters


class EmbeddedBroker:
    def __init__(
        self,
        key: str,
        broker_class: str,
        shared: SharedStore,
        dead_letters: DeadLetterQueue | None = None,
    ) -> None:
        self.key = key
        self.broker_class = broker_class
        self.shared = shared
        self.store = shared.store
        self.durable = shared.store.durable
        self.dead_letters: DeadLetterQueue | None = dead_letters or StoreDeadLetters(shared.store)
        self.router = Router()
        self._subs: dict[str, StoreSubscription] = {}
        self.dedup = Deduplicator(durable=shared.store.durable)
        self._duplicates = 0
        shared.brokers.append(self)

    def triggers(self) -> list[str]:
        return list(self._subs)

    def subscribe(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> StoreSubscription:
        sub = StoreSubscription(self.store, self.key, trigger)
        self.router.add(trigger, event_filter)
        self._subs[trigger] = sub
        return sub

    async def refilter(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> None:
        if trigger not in self._subs:
            raise KeyError(trigger)
        self.router.add(trigger, event_filter)  # pending rows stay: the backlog is kept

    async def unsubscribe(self, trigger: str) -> None:
        """Routing stops at once; the pending rows go with a store operation queued
        after every append already routed to the trigger, so none is left behind."""
        self.router.remove(trigger)
        self._subs.pop(trigger, None)
        if self.shared.opened:
            await self.store.release_trigger(trigger)

    def trigger_tasks(self, trigger: str) -> list[BrokerTask]:
        return []

    async def open(self) -> None:
        await self.shared.acquire()
        try:
            self.dedup.load(await self.store.load_seen(self.key))
        except BaseException:
            await self.shared.release()
            raise

    async def close(self) -> None:
        await self.shared.release(self)

    def tasks(self) -> list[BrokerTask]:
        return []

    def route(self, event: Event) -> Routing:
        """The triggers ``event`` matches, and (trigger, reason) for those of the
        candidates the trigger index asked that it does not."""
        return self.router.route(event)

    async def publish(self, events: Sequence[Event]) -> None:
        if not self.dedup.wants(events):
            await self._store(events)
            return
        async with self.dedup.admit(events) as claim:
            # The keys of events no trigger wants are kept too: an id accepted once is
            # a duplicate for the window, whatever became of the event.
            await self._store(claim.fresh, claim.added, claim.forgotten)
        self._duplicates += len(claim.duplicates)

    async def _store(
        self,
        events: Sequence[Event],
        seen: Sequence[SeenRow] = (),
        forget: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        route = self.router.route
        routings = [route(event) for event in events]
        routed = [Routed(e, r[0]) for e, r in zip(events, routings, strict=True) if r[0]]
        if routed:
            now = time.time()
            for r in routed:
                r.event.arrived = now
        if routed or seen or forget:
            offer = self._offer_all(routed) if routed else None
            await self.store.append(self.key, routed, seen=seen, forget=forget, committed=offer)
        self.router.record(routings)  # counted only once the batch was accepted

    def _offer_all(self, routed: Sequence[Routed]) -> Callable[[], None]:
        """The ``committed`` callback of an append: offer each event to the
        subscriptions of the triggers it matched (run by the store at the commit)."""
        subs = self._subs

        def offer() -> None:
            for r in routed:
                for trigger in r.triggers:
                    sub = subs.get(trigger)
                    if sub is not None:  # None: unsubscribed while the batch was stored
                        sub.offer(r.event)

        return offer

    async def replay(self, trigger: str, event: Event) -> None:
        if trigger not in self._subs:
            raise KeyError(trigger)
        routed = [Routed(event, (trigger,))]
        await self.store.append(self.key, routed, committed=self._offer_all(routed))

    def drops(self) -> Mapping[tuple[str, str], int]:
        drops = self.router.drops()
        if self._duplicates:
            drops[("", DUPLICATE)] = self._duplicates
        return drops

    def status(self) -> BrokerStatus:
        stats = self.store.stats()
        # Not ready while the store cannot write (its writer failing, e.g. disk full).
        ready = bool(getattr(self.store, "writable", lambda: True)())
        return BrokerStatus(
            ready=ready,
            stored_events=stats.events,
            stored_bytes=stats.bytes,
            extra={"dedupKeys": self.dedup.remembered()},
        )
