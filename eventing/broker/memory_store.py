"""The in-memory store: for tests and throwaway demos only.

Everything is lost when the process exits, which is why a broker of this class says
so in ``eventing status`` and in the log at start. It keeps the same bounds and the
same exact per-trigger backlog as the durable store, so behaviour is the same.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence

from eventing.broker.store import DeadLetter, Routed, SeenRow, StoreStats
from eventing.errors import StoreClosedError, StoreFullError
from eventing.events import Event


class MemoryStore:
    durable = False

    def __init__(self, max_events: int = 100_000, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: dict[int, tuple[str, Event, int]] = {}
        self._refs: dict[int, int] = {}
        self._pending: dict[str, dict[int, None]] = {}
        self._dead: dict[int, DeadLetter] = {}
        self._seq = itertools.count(1)
        self._dl_ids = itertools.count(1)
        self._bytes = 0
        self._commits = 0
        self._open = False

    async def open(self, triggers: Sequence[str]) -> None:
        self._pending = {t: self._pending.get(t, {}) for t in triggers}
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise StoreClosedError("the store is closed")

    async def append(
        self,
        broker: str,
        routed: Sequence[Routed],
        *,
        seen: Sequence[SeenRow] = (),
        forget: Sequence[tuple[str, str, str]] = (),
        committed: Callable[[], None] | None = None,
    ) -> None:
        """``seen``/``forget`` are ignored: the in-memory class's deduplication keys
        live in its broker's windows, and are lost with them. ``committed`` is called
        once the events are in, just before this returns."""
        self._check_open()
        size = sum(len(r.event.data or b"") + 64 * len(r.event.attributes) for r in routed)
        if len(self._events) + len(routed) > self.max_events:
            raise StoreFullError(f"store holds {len(self._events)} events")
        if self._bytes + size > self.max_bytes:
            raise StoreFullError(f"store holds {self._bytes} bytes")
        for r in routed:
            seq = next(self._seq)
            r.event.seq = seq
            stored = Event(dict(r.event.attributes), r.event.data, seq)
            item_size = len(stored.data or b"") + 64 * len(stored.attributes)
            self._events[seq] = (broker, stored, item_size)
            self._refs[seq] = len(r.triggers)
            self._bytes += item_size
            for t in r.triggers:
                self._pending.setdefault(t, {})[seq] = None
        self._commits += 1
        if committed is not None:
            committed()

    async def load_seen(self, broker: str) -> list[SeenRow]:
        return []

    async def ack(self, trigger: str, seqs: Sequence[int]) -> None:
        self._check_open()
        for seq in seqs:
            self._release(trigger, seq)

    def ack_nowait(self, trigger: str, seq: int) -> None:
        self._check_open()
        self._release(trigger, seq)

    def _release(self, trigger: str, seq: int) -> None:
        rows = self._pending.get(trigger)
        if rows is None or seq not in rows:
            return
        del rows[seq]
        self._refs[seq] -= 1
        if self._refs[seq] == 0:
            del self._refs[seq]
            _, _, size = self._events.pop(seq)
            self._bytes -= size

    async def dead_letter(
        self,
        broker: str,
        trigger: str,
        event: Event,
        *,
        attempts: int,
        reason: str,
        status: int | None,
    ) -> None:
        self._check_open()
        dl_id = next(self._dl_ids)
        self._dead[dl_id] = DeadLetter(
            dl_id, broker, trigger, event.copy(), time.time(), attempts, reason, status
        )
        if event.seq:
            self._release(trigger, event.seq)

    async def release_trigger(self, trigger: str) -> int:
        self._check_open()
        rows = list(self._pending.get(trigger, {}))
        for seq in rows:
            self._release(trigger, seq)
        self._pending.pop(trigger, None)
        return len(rows)

    async def load_pending(self, trigger: str, after_seq: int, limit: int) -> list[Event]:
        self._check_open()
        seqs = sorted(s for s in self._pending.get(trigger, {}) if s > after_seq)[:limit]
        out = []
        for seq in seqs:
            stored = self._events[seq][1]
            out.append(Event(dict(stored.attributes), stored.data, seq))
        return out

    def pending_count(self, trigger: str) -> int:
        return len(self._pending.get(trigger, {}))

    def stats(self) -> StoreStats:
        dead: dict[str, int] = {}
        for dl in self._dead.values():
            dead[dl.trigger] = dead.get(dl.trigger, 0) + 1
        pending = {t: len(rows) for t, rows in self._pending.items()}
        return StoreStats(len(self._events), self._bytes, self._commits, pending, dead)

    async def list_dead_letters(
        self, trigger: str | None, limit: int, after_id: int = 0
    ) -> list[DeadLetter]:
        rows = [
            d
            for i, d in sorted(self._dead.items())
            if i > after_id and (trigger is None or d.trigger == trigger)
        ]
        return rows[:limit]

    async def get_dead_letter(self, dl_id: int) -> DeadLetter | None:
        return self._dead.get(dl_id)

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        return sum(1 for i in ids if self._dead.pop(i, None) is not None)
