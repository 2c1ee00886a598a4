"""Routing an event through the triggers' filters, shared by every broker class.

The embedded classes store an event with the triggers it matched; the server-backed
classes publish it once and let each trigger filter (partly on the server), but
they run the same routing at publish to count what each trigger's filter dropped
and what no trigger wanted, so ``eventing_filter_drops`` means the same for every
class (counted by the process that accepted the event).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from eventing.broker.base import Filter
from eventing.events import Event


def route(
    filters: Mapping[str, Filter], event: Event
) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The triggers ``event`` matches, and (trigger, reason) for each that it does not
    (plus ``("", "no-trigger")`` when none matches)."""
    matched: list[str] = []
    dropped: list[tuple[str, str]] = []
    attributes = event.attributes
    for trigger, event_filter in filters.items():
        reason = event_filter(attributes)
        if reason is None:
            matched.append(trigger)
        else:
            dropped.append((trigger, reason))
    if not matched:
        dropped.append(("", "no-trigger"))
    return tuple(matched), dropped


def count(drops: MutableMapping[tuple[str, str], int], dropped: list[tuple[str, str]]) -> None:
    for key in dropped:
        drops[key] = drops.get(key, 0) + 1
