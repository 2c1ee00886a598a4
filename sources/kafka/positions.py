"""Deduplication of a KafkaSource by position: one remembered key per stored batch and
partition instead of one per record.

Why: a wrapped record's id is its position (``partition:<p>/offset:<o>`` under a
``source`` naming the topic), and the source stores each partition's records in
order, one ``emit`` at a time. A key per record cost the broker a claim, a ``seen``
row written with the event and, once the window is full, a row deleted per event
(docs/benchmarks.md, "Issue 14: the Kafka source (session 6)").

How, exactly:

- In each ``emit`` only the last *positional* event of each partition (one whose id
  and source are its record's position) keeps its deduplication key
  (:func:`key_last`); the other positional events carry none (``event.dedup = ""``).
  The broker writes that key in the same transaction as the events (the durable
  store), so a stored key means every record of the partition before it is stored
  too (in order; a refused record is committed past, never stored).
- After a restart or a rebalance the records after the group's last commit are read
  again. Before storing any record of a newly assigned partition, the source asks its
  ``emit`` for the ids the broker remembers for the topic's source
  (:class:`eventing.sourcing.Recall`): every record at or below the highest remembered
  offset of that partition (:func:`highest_stored`) is stored already, and is
  skipped, counted as a duplicate and committed past.
- Records that are CloudEvents keep their own ids and a key each, as before.

The window's bounds apply as to any key: a batch's key older than the window (an
hour by default) no longer stops its records from being stored again, as a record's
own key did not. Where the ``emit`` cannot tell (deduplication off, or a source too
long for its keys to be remembered as they are), every event keeps its key.

Pure: decided from ids, offsets and the events' marks alone.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Final

from eventing.events import Event

_POSITION: Final = re.compile(r"partition:(\d{1,10})/offset:(\d{1,19})\Z")


def position_id(partition: int, offset: int) -> str:
    """The id of a wrapped record (Knative KafkaSource's)."""
    return f"partition:{partition}/offset:{offset}"


def highest_stored(ids: Iterable[str]) -> dict[int, int]:
    """Per partition, the highest offset among position ids (other ids are ignored)."""
    highest: dict[int, int] = {}
    for text in ids:
        match = _POSITION.match(text)
        if match is None:
            continue
        partition, offset = int(match[1]), int(match[2])
        if offset > highest.get(partition, -1):
            highest[partition] = offset
    return highest


def key_last(items: Sequence[tuple[Any, Event]]) -> None:
    """Before one ``emit`` of ``items`` ((record, event) in fetch order): of the
    positional events (marked ``dedup == ""`` when decoded), the last of each partition
    gets its key back (``None``: the source's scope, as its emitter decides). An event
    that got its key in an earlier, refused ``emit`` of a longer batch keeps it."""
    last: dict[Hashable, int] = {}
    for index, (record, event) in enumerate(items):
        if event.dedup == "":
            last[(record.topic, record.partition)] = index
    for index in last.values():
        items[index][1].dedup = None


class Skips:
    """Per newly assigned partition: the highest offset already stored, until a record
    beyond it arrives."""

    __slots__ = ("stored",)

    def __init__(self) -> None:
        self.stored: dict[Hashable, int] = {}

    def learn(self, tp: Hashable, highest: int | None) -> None:
        if highest is None:
            self.stored.pop(tp, None)
        else:
            self.stored[tp] = highest

    def forget(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self.stored.pop(tp, None)

    def first_new(self, tp: Hashable, records: Sequence[Any]) -> int:
        """How many leading ``records`` of ``tp`` (in offset order) are stored already."""
        highest = self.stored.get(tp)
        if highest is None:
            return 0
        if records[-1].offset <= highest:
            return len(records)
        del self.stored[tp]  # this batch passes it: nothing after needs a look
        skipped = 0
        for record in records:
            if record.offset > highest:
                break
            skipped += 1
        return skipped
