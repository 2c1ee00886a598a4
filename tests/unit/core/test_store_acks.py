"""The SQLite store applies the acks of every trigger in a commit group together (one
statement, not one per trigger): each trigger's pending count (the autoscaler's
backlog) stays exact through acks of many triggers at once, acks whose row is gone
(a released trigger, a repeated ack), dead letters in the same group, and a restart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from eventing.broker import sqlite_rows
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.store import Routed
from eventing.events import Event

# Trigger names go into the statement as JSON object keys: quotes and non-ASCII too.
TRIGGERS = [f"ns/t{i}" for i in range(40)] + ['ns/"quoted"', "ns/ü-ß"]


def event(n: int) -> Event:
    return Event({"specversion": "1.0", "id": f"e{n}", "source": "/s", "type": "t"}, b"x" * n)


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many triggers each call of ``apply_acks`` covered (one call per group)."""
    sizes: list[int] = []
    real: Callable[..., None] = sqlite_rows.apply_acks

    def counting(conn: Any, d: Any, index: Any, acked: list[dict[str, list[int]]]) -> None:
        sizes.append(len({trigger for acks in acked for trigger in acks}))
        real(conn, d, index, acked)

    monkeypatch.setattr(sqlite_rows, "apply_acks", counting)
    return sizes


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    await opened.open(TRIGGERS)
    yield opened
    await opened.close()


class Model:
    """What the store should hold: the pending (trigger, seq) pairs and each event's size."""

    def __init__(self) -> None:
        self.pending: set[tuple[str, int]] = set()
        self.sizes: dict[int, int] = {}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for trigger, _ in self.pending:
            out[trigger] = out.get(trigger, 0) + 1
        return out

    def live(self) -> set[int]:
        return {seq for _, seq in self.pending}


async def append(store: SqliteStore, model: Model, rng: random.Random, count: int) -> None:
    routed = []
    for _ in range(count):
        e = event(len(model.sizes) + rng.randrange(1, 50))
        routed.append(Routed(e, tuple(rng.sample(TRIGGERS, rng.choice((1, 1, 2, 3))))))
    await store.append("br", routed)
    for r in routed:
        model.sizes[r.event.seq] = len(r.event.data or b"") + 64 * len(r.event.attributes)
        model.pending.update((t, r.event.seq) for t in r.triggers)


async def settle(store: SqliteStore) -> None:
    """Every ack queued so far committed and counted: a waited ack queues behind them
    once they are handed to the writer (at the end of this loop iteration)."""
    await asyncio.sleep(0)  # one turn: the hand-off ``ack_nowait`` scheduled runs first
    await store.ack(TRIGGERS[0], [0])


def check(store: SqliteStore, model: Model) -> None:
    assert {t: n for t, n in store.stats().pending.items() if n} == model.counts()
    for trigger in TRIGGERS:
        assert store.pending_count(trigger) == model.counts().get(trigger, 0)
    live = model.live()
    assert store.stats().events == len(live)
    assert store.stats().bytes == sum(model.sizes[seq] for seq in live)


async def test_acks_of_many_triggers_in_one_group_keep_every_count_exact(
    store: SqliteStore, groups: list[int]
) -> None:
    rng, model = random.Random(14), Model()
    for _ in range(5):
        await append(store, model, rng, 300)
        # About half of what is pending, over every trigger, acked in one loop iteration.
        chosen = rng.sample(sorted(model.pending), len(model.pending) // 2)
        for trigger, seq in chosen:
            store.ack_nowait(trigger, seq)
        model.pending.difference_update(chosen)
        await settle(store)
        check(store, model)
    assert max(groups) > 20  # the acks of many triggers were applied together
    for trigger in TRIGGERS:
        loaded = await store.load_pending(trigger, 0, 10_000)
        assert [e.seq for e in loaded] == sorted(s for t, s in model.pending if t == trigger)


async def test_an_ack_whose_row_is_gone_counts_nothing(
    store: SqliteStore, groups: list[int]
) -> None:
    rng, model = random.Random(7), Model()
    await append(store, model, rng, 200)
    released, kept = TRIGGERS[1], TRIGGERS[2]
    removed = await store.release_trigger(released)
    assert removed == sum(1 for t, _ in model.pending if t == released)
    model.pending = {(t, s) for t, s in model.pending if t != released}
    # In one group: acks for the released trigger's rows (gone), an ack repeated
    # within the group, and acks of other triggers.
    gone = [s for s in model.sizes][:20]
    for seq in gone:
        store.ack_nowait(released, seq)
    acked = sorted((t, s) for t, s in model.pending if t == kept)[:5]
    for trigger, seq in acked + acked:
        store.ack_nowait(trigger, seq)
    model.pending.difference_update(acked)
    await settle(store)
    check(store, model)
    assert store.pending_count(released) == 0
    # The same acks again in a later group: rows gone, counts unchanged.
    for trigger, seq in acked:
        store.ack_nowait(trigger, seq)
    store.ack_nowait(TRIGGERS[3], 10**9)  # a seq never stored
    await settle(store)
    check(store, model)
    assert max(groups) >= 2


async def test_dead_letters_and_acks_of_other_triggers_in_one_group(store: SqliteStore) -> None:
    rng, model = random.Random(3), Model()
    await append(store, model, rng, 100)
    pairs = sorted(model.pending)
    dead, acked = pairs[0], pairs[1:40]
    dead_event = next(e for e in await store.load_pending(dead[0], 0, 1000) if e.seq == dead[1])
    for trigger, seq in acked:
        store.ack_nowait(trigger, seq)
    await store.dead_letter("br", dead[0], dead_event, attempts=1, reason="HTTP 500", status=500)
    model.pending.difference_update([dead, *acked])
    await settle(store)
    check(store, model)
    assert store.stats().dead_letters == {dead[0]: 1}


@pytest.mark.parametrize("triggers", [1, len(TRIGGERS)])
async def test_counts_after_a_restart_equal_the_counts_before(
    tmp_path: Path, triggers: int
) -> None:
    path, names = tmp_path / "s.db", TRIGGERS[:triggers]
    rng, model = random.Random(triggers), Model()
    store = SqliteStore(SqliteSettings(path))
    await store.open(names)
    try:
        for _ in range(4):
            routed = [Routed(event(rng.randrange(1, 40)), (rng.choice(names),)) for _ in range(150)]
            await store.append("br", routed)
            for r in routed:
                model.sizes[r.event.seq] = len(r.event.data or b"") + 64 * len(r.event.attributes)
                model.pending.add((r.triggers[0], r.event.seq))
            for trigger, seq in rng.sample(sorted(model.pending), len(model.pending) // 3):
                store.ack_nowait(trigger, seq)
                model.pending.discard((trigger, seq))
            await settle(store)
    finally:
        await store.close()  # commits whatever acks are still queued
    before = (store.stats().events, store.stats().bytes, store.stats().pending)
    again = SqliteStore(SqliteSettings(path))
    await again.open(names)
    try:
        after = again.stats()
        assert (after.events, after.bytes) == before[:2]
        assert {t: n for t, n in after.pending.items() if n} == {
            t: n for t, n in before[2].items() if n
        }
        check(again, model)
    finally:
        await again.close()
