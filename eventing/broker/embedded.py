"""The embedded broker classes (durable SQLite, or in-memory) over a shared store.

Routing happens once, at publish: each trigger's materialised filter runs on the
event's attributes and the event is stored with one pending row per matching
trigger. That is what makes each trigger's backlog exact, keeps a trigger from ever
seeing an event its filter rejects (even after a crash), and means an event no
trigger wants is never written at all (it is counted as dropped, not stored).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from eventing.broker.base import Filter
from eventing.broker.store import Routed, Store
from eventing.broker.subscription import StoreSubscription
from eventing.events import Event


class EmbeddedBroker:
    def __init__(self, key: str, broker_class: str, store: Store) -> None:
        self.key = key
        self.broker_class = broker_class
        self.store = store
        self.durable = store.durable
        self._filters: dict[str, Filter] = {}
        self._subs: dict[str, StoreSubscription] = {}
        self._drops: dict[tuple[str, str], int] = {}

    def subscribe(self, trigger: str, event_filter: Filter) -> StoreSubscription:
        sub = StoreSubscription(self.store, self.key, trigger)
        self._filters[trigger] = event_filter
        self._subs[trigger] = sub
        return sub

    def route(self, event: Event) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
        """The triggers ``event`` matches, and (trigger, reason) for each that it does not."""
        matched: list[str] = []
        dropped: list[tuple[str, str]] = []
        attributes = event.attributes
        for trigger, event_filter in self._filters.items():
            reason = event_filter(attributes)
            if reason is None:
                matched.append(trigger)
            else:
                dropped.append((trigger, reason))
        if not matched:
            dropped.append(("", "no-trigger"))
        return tuple(matched), dropped

    async def publish(self, events: Sequence[Event]) -> None:
        routed: list[Routed] = []
        dropped: list[tuple[str, str]] = []
        for event in events:
            triggers, drops = self.route(event)
            dropped.extend(drops)
            if triggers:
                routed.append(Routed(event, triggers))
        if routed:
            now = time.time()
            for r in routed:
                r.event.arrived = now
            await self.store.append(self.key, routed)
        for key in dropped:  # counted only once the batch was accepted
            self._drops[key] = self._drops.get(key, 0) + 1
        for r in routed:
            for trigger in r.triggers:
                self._subs[trigger].offer(r.event)

    def drops(self) -> Mapping[tuple[str, str], int]:
        return self._drops
