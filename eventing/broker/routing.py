"""Routing an event through the triggers' filters, shared by every broker class.

The embedded classes store an event with the triggers it matched; the server-backed
classes publish it once and let each trigger filter (partly on the server), but
they run the same routing at publish to count what each trigger's filter dropped
and what no trigger wanted, so ``eventing_filter_drops`` means the same for every
class (counted by the process that accepted the event).

A filter that needs the event's data (a payload dialect, opt-in per trigger) answers
:data:`NEEDS_DATA` to the attributes and is then asked again through
:class:`DataFilter` with the data and a per-event scratch dict that every such filter
of the event shares, so the payload is parsed at most once per event, and only for
brokers that have such a trigger: an attribute-only filter never answers it, and a
matching event costs nothing more here.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Final, Protocol, cast

from eventing.broker.base import Filter
from eventing.events import AttributeValue, Event

#: What a filter answers when it cannot decide on attributes alone.
NEEDS_DATA: Final = "needs-data"


class DataFilter(Protocol):
    """The second question to a filter that answered :data:`NEEDS_DATA`."""

    def with_data(
        self,
        attributes: Mapping[str, AttributeValue],
        data: bytes | None,
        scratch: dict[str, object],
        /,
    ) -> str | None:
        """As ``Filter.__call__``; ``scratch`` is shared by the event's data filters."""


def route(
    filters: Mapping[str, Filter], event: Event
) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The triggers ``event`` matches, and (trigger, reason) for each that it does not
    (plus ``("", "no-trigger")`` when none matches)."""
    matched: list[str] = []
    dropped: list[tuple[str, str]] = []
    attributes = event.attributes
    scratch: dict[str, object] | None = None
    for trigger, event_filter in filters.items():
        reason = event_filter(attributes)
        if reason is None:
            matched.append(trigger)
            continue
        if reason is NEEDS_DATA:
            if scratch is None:
                scratch = {}
            reason = cast(DataFilter, event_filter).with_data(attributes, event.data, scratch)
            if reason is None:
                matched.append(trigger)
                continue
        dropped.append((trigger, reason))
    if not matched:
        dropped.append(("", "no-trigger"))
    return tuple(matched), dropped


def count(drops: MutableMapping[tuple[str, str], int], dropped: list[tuple[str, str]]) -> None:
    for key in dropped:
        drops[key] = drops.get(key, 0) + 1
