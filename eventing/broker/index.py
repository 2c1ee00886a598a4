"""The trigger index: route an event to the few triggers that can match it.

:func:`eventing.broker.routing.route` asks every trigger's filter about every event, so
routing cost grows with the number of triggers. A :class:`Router` asks only the
*candidates*: each trigger's filter may name :class:`Guard` s, conditions every event
that passes it meets (``type`` equals ``"com.example.order"``, ``source`` starts with
``"/shop/"``, ``type`` ends with ``".created"``), and the router keeps the triggers in
hash tables per attribute and value (prefixes and suffixes by their distinct lengths:
one slice and one lookup per length), plus an always-checked list for the filters that
name none (``any``, ``not``, most CESQL, a plain callable). Only candidates run their
full filter, so the verdicts are exactly the linear scan's.

A guard is also a promise about the *reason*: when an event fails it, the filter's
verdict is ``"filtered"`` (the guard's clause is evaluated before anything that could
err). That is what lets the router count those triggers' drops without asking them:
per trigger it counts the events routed since it was added and those it matched or
dropped for an explicit reason; the rest were filtered (:meth:`Router.drops`).

Two flavours, because the dialects differ on values that are not strings:

- *loose* (the ``exact``/``prefix`` dialects, legacy ``filter.attributes``): the
  attribute's canonical string is compared; a missing attribute fails the guard;
- *strict* (a CESQL ``name = 'literal'``, ``name LIKE 'prefix%'`` or ``name LIKE
  '%suffix'`` conjunct): decided
  only when the attribute is a ``str``; a missing attribute (an error in CESQL) or any
  other type (a cast) makes the trigger a candidate.

Triggers come and go while the broker runs: :meth:`Router.add` (also to replace a
trigger's filter) and :meth:`Router.remove` update the tables in place.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Final, Protocol, cast, runtime_checkable

from eventing.broker.base import Filter
from eventing.broker.routing import NEEDS_DATA, DataFilter
from eventing.events import Event, canonical

FILTERED: Final = "filtered"
NO_TRIGGER: Final = ("", "no-trigger")

Routing = tuple[tuple[str, ...], list[tuple[str, str]]]
"""The triggers an event matched, and (trigger, reason) for those asked that did not
(``("", "no-trigger")`` when none matched); triggers not asked were filtered."""


@dataclass(frozen=True, slots=True)
class Guard:
    """A condition every event passing the filter meets; failing it means ``filtered``."""

    name: str
    value: str
    prefix: bool = False
    """``value`` is a prefix of the attribute, not the whole of it."""
    suffix: bool = False
    """``value`` is a suffix of the attribute, not the whole of it."""
    strict: bool = False
    """Decided only for ``str`` attribute values (CESQL); others make a candidate."""


@runtime_checkable
class Guarded(Protocol):
    """A filter that names its guards (``triggers.materialize.TriggerFilter`` does)."""

    guards: tuple[Guard, ...]


class _Entry:
    __slots__ = ("base", "explicit", "filter", "guard", "matched", "seq", "trigger")

    def __init__(self, trigger: str, seq: int, event_filter: Filter, guard: Guard | None) -> None:
        self.trigger = trigger
        self.seq = seq
        self.filter = event_filter
        self.guard = guard
        self.base = 0  # events recorded before it was added
        self.matched = 0
        self.explicit = 0  # drops recorded with a reason (only for guarded triggers)


class _Affixes:
    """Prefixes (or suffixes) of one attribute: a table keyed by the affix, looked up
    once per distinct length (few in practice)."""

    __slots__ = ("lengths", "suffix", "table")

    def __init__(self, suffix: bool = False) -> None:
        self.table: dict[str, list[_Entry]] = {}
        self.lengths: tuple[int, ...] = ()
        self.suffix = suffix

    def reindex(self) -> None:
        self.lengths = tuple(sorted({len(p) for p in self.table}))

    def find(self, value: str, into: list[_Entry]) -> None:
        table = self.table
        size = len(value)
        suffix = self.suffix
        for length in self.lengths:
            if length > size:
                return
            hit = table.get(value[size - length :] if suffix else value[:length])
            if hit:
                into.extend(hit)


class _Attribute:
    """Every guard on one attribute name."""

    __slots__ = (
        "loose",
        "loose_prefix",
        "loose_suffix",
        "strict",
        "strict_all",
        "strict_prefix",
        "strict_suffix",
    )

    def __init__(self) -> None:
        self.loose: dict[str, list[_Entry]] = {}
        self.strict: dict[str, list[_Entry]] = {}
        self.loose_prefix = _Affixes()
        self.strict_prefix = _Affixes()
        self.loose_suffix = _Affixes(suffix=True)
        self.strict_suffix = _Affixes(suffix=True)
        self.strict_all: list[_Entry] = []

    def affixes(self, guard: Guard) -> _Affixes | None:
        if guard.prefix:
            return self.strict_prefix if guard.strict else self.loose_prefix
        if guard.suffix:
            return self.strict_suffix if guard.strict else self.loose_suffix
        return None

    def table(self, guard: Guard) -> dict[str, list[_Entry]]:
        affixes = self.affixes(guard)
        if affixes is not None:
            return affixes.table
        return self.strict if guard.strict else self.loose

    def empty(self) -> bool:
        return not (
            self.loose
            or self.strict
            or self.loose_prefix.table
            or self.loose_suffix.table
            or self.strict_all
        )

    def find(self, value: object, into: list[_Entry]) -> None:
        if value is None:
            into.extend(self.strict_all)  # CESQL: a missing attribute is an error
            return
        if value.__class__ is str:
            text = value
            if self.loose:
                hit = self.loose.get(text)
                if hit:
                    into.extend(hit)
            if self.strict:
                hit = self.strict.get(text)
                if hit:
                    into.extend(hit)
            if self.loose_prefix.lengths:
                self.loose_prefix.find(text, into)
            if self.strict_prefix.lengths:
                self.strict_prefix.find(text, into)
            if self.loose_suffix.lengths:
                self.loose_suffix.find(text, into)
            if self.strict_suffix.lengths:
                self.strict_suffix.find(text, into)
            return
        into.extend(self.strict_all)  # CESQL casts it: ask the filter
        text = value if isinstance(value, str) else canonical(cast(int, value))
        hit = self.loose.get(text)
        if hit:
            into.extend(hit)
        self.loose_prefix.find(text, into)
        self.loose_suffix.find(text, into)


_SEQ = attrgetter("seq")


class Router:
    """The triggers of one broker, indexed by their filters' guards."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._attributes: dict[str, _Attribute] = {}
        self._plan: tuple[tuple[str, _Attribute], ...] = ()
        self._always: list[_Entry] = []
        self._seq = 0
        self._recorded = 0
        self._drops: dict[tuple[str, str], int] = {}

    # -- the seam for triggers added, refiltered and removed -----------------------------

    def add(self, trigger: str, event_filter: Filter) -> None:
        """Route to ``trigger`` by ``event_filter`` from now on (replacing its filter if
        it is already here: its counts carry on)."""
        previous = self._entries.get(trigger)
        if previous is not None:
            self.remove(trigger)  # keeps its place in the order, as a dict would
            seq = previous.seq
        else:
            self._seq += 1
            seq = self._seq
        guard = self._choose(event_filter)
        entry = _Entry(trigger, seq, event_filter, guard)
        entry.base = self._recorded
        self._entries[trigger] = entry
        if guard is None:
            insort(self._always, entry, key=_SEQ)  # kept in order: routes read it as is
            return
        attribute = self._attributes.get(guard.name)
        if attribute is None:
            attribute = self._attributes[guard.name] = _Attribute()
            self._plan = tuple(self._attributes.items())
        attribute.table(guard).setdefault(guard.value, []).append(entry)
        if guard.strict:
            attribute.strict_all.append(entry)
        affixes = attribute.affixes(guard)
        if affixes is not None:
            affixes.reindex()

    def remove(self, trigger: str) -> None:
        """Route nothing more to ``trigger``; its drops so far stay counted."""
        entry = self._entries.pop(trigger, None)
        if entry is None:
            return
        filtered = self._implicit(entry)
        if filtered:
            key = (trigger, FILTERED)
            self._drops[key] = self._drops.get(key, 0) + filtered
        guard = entry.guard
        if guard is None:
            self._always.remove(entry)
            return
        attribute = self._attributes[guard.name]
        table = attribute.table(guard)
        bucket = table[guard.value]
        bucket.remove(entry)
        if not bucket:
            del table[guard.value]
        if guard.strict:
            attribute.strict_all.remove(entry)
        affixes = attribute.affixes(guard)
        if affixes is not None:
            affixes.reindex()
        if attribute.empty():
            del self._attributes[guard.name]
            self._plan = tuple(self._attributes.items())

    def __contains__(self, trigger: str) -> bool:
        return trigger in self._entries

    def filters(self) -> Mapping[str, Filter]:
        """Every trigger's filter, in the order they were added (the linear view)."""
        return {e.trigger: e.filter for e in sorted(self._entries.values(), key=_SEQ)}

    def _choose(self, event_filter: Filter) -> Guard | None:
        """The guard whose bucket is smallest now (a filter with ``type`` and ``source``
        guards goes under the one that spreads the triggers best)."""
        if not isinstance(event_filter, Guarded) or not event_filter.guards:
            return None
        best: Guard | None = None
        best_size = -1
        for guard in event_filter.guards:
            attribute = self._attributes.get(guard.name)
            size = len(attribute.table(guard).get(guard.value, ())) if attribute else 0
            if best is None or size < best_size:
                best, best_size = guard, size
        return best

    # -- the data path -------------------------------------------------------------------

    def route(self, event: Event) -> Routing:
        """As :func:`eventing.broker.routing.route`, asking only the candidates."""
        attributes = event.attributes
        candidates: list[_Entry] = []
        for name, attribute in self._plan:
            attribute.find(attributes.get(name), candidates)
        if not candidates:
            candidates = self._always  # already in order; only read below
        elif self._always:
            candidates.extend(self._always)
            candidates.sort(key=_SEQ)  # the linear scan's order
        elif len(candidates) > 1:
            candidates.sort(key=_SEQ)
        matched: list[str] = []
        dropped: list[tuple[str, str]] = []
        scratch: dict[str, object] | None = None
        for entry in candidates:
            event_filter = entry.filter
            reason = event_filter(attributes)
            if reason is None:
                matched.append(entry.trigger)
                continue
            if reason is NEEDS_DATA:
                if scratch is None:
                    scratch = {}
                reason = cast(DataFilter, event_filter).with_data(attributes, event.data, scratch)
                if reason is None:
                    matched.append(entry.trigger)
                    continue
            dropped.append((entry.trigger, reason))
        if not matched:
            dropped.append(NO_TRIGGER)
        return tuple(matched), dropped

    def record(self, routings: Sequence[Routing]) -> None:
        """Count the drops of events now accepted (a failed store counts nothing)."""
        entries = self._entries
        drops = self._drops
        self._recorded += len(routings)
        for matched, dropped in routings:
            for trigger in matched:
                entry = entries.get(trigger)
                if entry is not None:
                    entry.matched += 1
            for key in dropped:
                drops[key] = drops.get(key, 0) + 1
                entry = entries.get(key[0])
                if entry is not None:
                    entry.explicit += 1

    def drops(self) -> dict[tuple[str, str], int]:
        """Events not routed to a trigger, by (trigger, reason), as the linear scan
        would have counted them."""
        out = dict(self._drops)
        for entry in self._entries.values():
            filtered = self._implicit(entry)
            if filtered:
                key = (entry.trigger, FILTERED)
                out[key] = out.get(key, 0) + filtered
        return out

    def _implicit(self, entry: _Entry) -> int:
        """The recorded events a trigger was not asked about (each was filtered)."""
        return self._recorded - entry.base - entry.matched - entry.explicit
