"""The ``emit`` a source is given: stamp, mark for deduplication, publish into its
broker, tell the tap; and what the broker remembers of the source's stored events
(:class:`eventing.sourcing.Recall`).

Why a class and not a closure: a source whose ids are positions (Kafka) asks its emit
which ids its broker remembers, to skip records read again after a restart without a
deduplication key per record (:mod:`sources.kafka.positions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

from eventing.app.dedup_config import SourceDedup
from eventing.broker.base import Broker
from eventing.broker.dedup import MAX_KEY_CHARS
from eventing.broker.stamps import now_rfc3339, stamp
from eventing.events import Event

#: Room left for an id beside its source in a remembered key: a Kafka position id is
#: at most 47 characters (``partition:2147483647/offset:9223372036854775807``).
ID_ROOM: Final = 64


class SourceEmitter:
    """``emit`` for one source into one broker (see the module docstring)."""

    __slots__ = ("broker", "broker_key", "marks", "on_publish")

    def __init__(
        self,
        broker: Broker,
        broker_key: str,
        marks: SourceDedup,
        on_publish: Callable[[], Callable[[str, Sequence[Event]], None] | None],
    ) -> None:
        self.broker = broker
        self.broker_key = broker_key
        self.marks = marks
        self.on_publish = on_publish
        """The tap's hook as it is now (set after the sources are built)."""

    async def __call__(self, events: Sequence[Event], /) -> None:
        arrival = now_rfc3339()
        mark = self.marks.mark
        for event in events:
            stamp(event, arrival)
            event.dedup = mark(event.dedup)
        await self.broker.publish(list(events))
        on_publish = self.on_publish()
        if on_publish is not None:
            on_publish(self.broker_key, events)

    def stored_ids(self, source: str, /) -> Iterable[str] | None:
        """The ids of ``source``'s events in the source's deduplication window that
        are still within its time bound; None when the source's events are not
        deduplicated or ``source`` is long enough for keys to be remembered by digest."""
        dedup = self.broker.dedup
        scope = self.marks.scope
        if not scope or not dedup.enabled or len(source) + ID_ROOM > MAX_KEY_CHARS:
            return None
        window = dedup.scopes.get(scope)
        if window is None:
            return []
        oldest = dedup.clock() - window.window.seconds
        return [key[1] for key, at in window.keys.items() if key[0] == source and at > oldest]
