"""The ``dlq:`` store of a server-backed broker class, kept as an append-only log.

Why a log: a Kafka topic cannot delete one record and a RabbitMQ stream cannot
either, and several processes must see the same dead letters. So a dead letter is
one record (the event in the class's binding, plus the ``eventing-dl-*`` metadata
below) and deleting or replaying one appends a **tombstone** record naming the ids
it removes. Every process tails the log and keeps this index; ``eventing dlq list``
reads the index of the process it asks, which has read the whole log.

Ids: ``base + position + 1``, where ``position`` is the record's offset in the log
and ``base`` is derived from the broker's key (:func:`id_base`), so the ids of two
brokers (and of the embedded SQLite store, which counts from 1) do not collide and
an id stays the same in every process and across restarts.

The index is bounded (:data:`MAX_KEPT` dead letters, :data:`MAX_BYTES` of data): past
that the oldest leave memory (they stay in the log) and ``evicted`` counts them.
"""

from __future__ import annotations

import time
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from eventing.broker.store import DeadLetter
from eventing.events import Event

TRIGGER: Final = "eventing-dl-trigger"
ATTEMPTS: Final = "eventing-dl-attempts"
REASON: Final = "eventing-dl-reason"
STATUS: Final = "eventing-dl-status"
FAILED_AT: Final = "eventing-dl-failed-at"
DELETES: Final = "eventing-dl-deletes"
"""A tombstone: comma-separated ids the record removes."""
MAX_KEPT: Final = 10_000
MAX_BYTES: Final = 64 * 1024 * 1024
MAX_REASON: Final = 1024
MAX_DELETES_PER_RECORD: Final = 1000
ID_SPAN: Final = 10**12


def id_base(broker: str) -> int:
    """Where a broker's dead-letter ids start: ``(1 + crc32(key) % 8999) * 10**12``."""
    return (1 + zlib.crc32(broker.encode()) % 8999) * ID_SPAN


@dataclass(frozen=True, slots=True)
class DeadLetterMeta:
    trigger: str
    attempts: int
    reason: str
    status: int | None
    failed_at: float

    def headers(self) -> dict[str, str]:
        out = {
            TRIGGER: self.trigger,
            ATTEMPTS: str(self.attempts),
            REASON: self.reason[:MAX_REASON],
            FAILED_AT: f"{self.failed_at:.6f}",
        }
        if self.status is not None:
            out[STATUS] = str(self.status)
        return out


def new_meta(trigger: str, attempts: int, reason: str, status: int | None) -> DeadLetterMeta:
    return DeadLetterMeta(trigger, attempts, reason, status, time.time())


def parse_meta(headers: Mapping[str, str]) -> DeadLetterMeta | None:
    """The metadata of a dead-letter record, or None when it is not one."""
    trigger = headers.get(TRIGGER)
    if trigger is None:
        return None
    try:
        attempts = int(headers.get(ATTEMPTS, "0"))
        failed_at = float(headers.get(FAILED_AT, "0"))
        raw_status = headers.get(STATUS)
        status = int(raw_status) if raw_status else None
    except ValueError:
        return None
    return DeadLetterMeta(
        trigger, attempts, headers.get(REASON, "")[:MAX_REASON], status, failed_at
    )


def tombstone_headers(ids: Sequence[int]) -> dict[str, str]:
    return {DELETES: ",".join(str(i) for i in ids[:MAX_DELETES_PER_RECORD])}


def parse_tombstone(headers: Mapping[str, str]) -> list[int]:
    raw = headers.get(DELETES)
    if not raw:
        return []
    out: list[int] = []
    for part in raw.split(",")[:MAX_DELETES_PER_RECORD]:
        if part.strip().isdigit():
            out.append(int(part))
    return out


class DeadLetterLog:
    """The live dead letters of one broker's log, in log order (bounded)."""

    def __init__(self, broker: str, max_kept: int = MAX_KEPT) -> None:
        self.broker = broker
        self.max_kept = max_kept
        self.base = id_base(broker)
        self._items: OrderedDict[int, DeadLetter] = OrderedDict()
        self._deleted: set[int] = set()
        self._bytes = 0
        self._depths: dict[str, int] = {}
        self.evicted = 0
        self.read_up_to = -1
        """The highest log position applied (the tailer reads on from here)."""

    def id_of(self, position: int) -> int:
        return self.base + position + 1

    def add(self, position: int, event: Event, meta: DeadLetterMeta) -> None:
        self.read_up_to = max(self.read_up_to, position)
        dl_id = self.id_of(position)
        if dl_id in self._deleted or dl_id in self._items:
            return
        item = DeadLetter(
            dl_id,
            self.broker,
            meta.trigger,
            event,
            meta.failed_at,
            meta.attempts,
            meta.reason,
            meta.status,
        )
        self._items[dl_id] = item
        self._bytes += len(event.data or b"")
        self._depths[meta.trigger] = self._depths.get(meta.trigger, 0) + 1
        while len(self._items) > self.max_kept or self._bytes > MAX_BYTES:
            _, oldest = self._items.popitem(last=False)
            self._forget(oldest)
            self.evicted += 1

    def delete(self, position: int, ids: Sequence[int]) -> int:
        """Apply a tombstone (read at ``position``, or -1 when applied locally first)."""
        if position >= 0:
            self.read_up_to = max(self.read_up_to, position)
        removed = 0
        for dl_id in ids:
            if not self.base < dl_id <= self.base + ID_SPAN:
                continue
            self._deleted.add(dl_id)
            item = self._items.pop(dl_id, None)
            if item is not None:
                self._forget(item)
                removed += 1
        return removed

    def skip(self, position: int) -> None:
        """A record that is neither (unreadable): only the position moves."""
        self.read_up_to = max(self.read_up_to, position)

    def _forget(self, item: DeadLetter) -> None:
        self._bytes -= len(item.event.data or b"")
        left = self._depths.get(item.trigger, 0) - 1
        if left > 0:
            self._depths[item.trigger] = left
        else:
            self._depths.pop(item.trigger, None)

    def list(self, trigger: str | None, limit: int, after_id: int = 0) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for dl_id, item in self._items.items():
            if dl_id <= after_id or (trigger is not None and item.trigger != trigger):
                continue
            out.append(item)
            if len(out) >= limit:
                break
        return out

    def get(self, dl_id: int) -> DeadLetter | None:
        return self._items.get(dl_id)

    def depths(self) -> Mapping[str, int]:
        return self._depths
