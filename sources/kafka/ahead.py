"""Fetched Kafka batches waiting to be stored, and where to rewind when storing fails.

Why: the source used to fetch a batch, wait for the broker to store it, then fetch the
next; the store's latency (group commit, fsync) left the source idle for most of each
batch. Now the next batches are fetched and decoded while one ``emit`` is storing, and
everything fetched meanwhile is stored by the *next* ``emit``, merged into one call
(bounded by :data:`sources.kafka.session.AHEAD` batches). One ``emit`` at a time keeps
the order of every partition in the broker exactly as before (a second concurrent
``emit`` could overtake the first in a broker that does not take publishes in call
order, or after a failure), and the slower the store answers, the larger the next
group it gets.

Pure: what to commit and where to seek is decided here from offsets alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventing.events import Event


@dataclass(slots=True)
class Fetched:
    """Records fetched (one or more ``getmany`` results) and the events made of them."""

    items: list[tuple[Any, Event]] = field(default_factory=list)
    """(record, event) of the records that became events, in fetch order."""
    offsets: dict[Hashable, int] = field(default_factory=dict)
    """Per partition: the last fetched offset + 1 (refused records included)."""
    first: dict[Hashable, int] = field(default_factory=dict)
    """Per partition: the first fetched offset."""

    def add(self, tp: Hashable, first: int, last: int) -> None:
        """Account for records ``first..last`` of ``tp``, fetched after the rest."""
        self.first.setdefault(tp, first)
        self.offsets[tp] = last + 1

    def merge(self, later: Fetched) -> None:
        """Append ``later`` (fetched after this one)."""
        self.items.extend(later.items)
        for tp, offset in later.first.items():
            self.first.setdefault(tp, offset)
        self.offsets.update(later.offsets)


def merged(batches: Sequence[Fetched]) -> Fetched:
    """One batch of ``batches`` in fetch order (the first one is extended)."""
    out = batches[0]
    for later in batches[1:]:
        out.merge(later)
    return out


@dataclass(frozen=True, slots=True)
class Rewind:
    """After a failed store: what may be committed and where each partition reads next."""

    commit: dict[Hashable, int]
    """Offsets past the stored prefix, only where it advanced the partition."""
    seek: dict[Hashable, int]
    """Per partition, the first record not stored (of the failed batch or fetched after)."""


def rewind(failed: Fetched, stored: int, partition: Any, dropped: Sequence[Fetched] = ()) -> Rewind:
    """``failed``'s first ``stored`` items are stored and the rest are not; ``dropped``
    were fetched after it and are thrown away. ``partition(record)`` is its key."""
    offsets = dict(failed.offsets)
    seek: dict[Hashable, int] = {}
    for record, _ in failed.items[stored:]:
        tp = partition(record)
        if offsets[tp] > record.offset:  # the first unstored record of its partition
            offsets[tp] = record.offset
            seek[tp] = record.offset
    for batch in dropped:
        for tp, offset in batch.first.items():
            seek.setdefault(tp, offsets.get(tp, offset))
    commit = {tp: o for tp, o in offsets.items() if o > failed.first[tp]}
    return Rewind(commit, seek)
