"""Delivery starts at the commit, the 202 waits for the fsync (issue 14, tail latency).

The SQLite store with FULL durability runs an append's ``committed`` callback on the
loop right after the group's COMMIT and resolves the append only after the syncer's
fsync. These tests hold the fsync on a ``threading.Event`` (a test-only subclass; no
sleeps) and look at what happened in between: the event is already with its
subscriber, the publish (what the ingress answers 202 on) is not done yet."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from eventing.broker import sqlite_rows
from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.memory_store import MemoryStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.store import Routed
from eventing.broker.subscription import StoreSubscription
from eventing.errors import StoreError
from eventing.events import Event

DEADLINE = 10.0


class HeldSyncStore(SqliteStore):
    """Its syncer waits for :attr:`free` before each fsync."""

    def __init__(self, settings: SqliteSettings) -> None:
        super().__init__(settings)
        self.free = threading.Event()
        self.free.set()
        self.fail_next: OSError | None = None

    def _fsync(self) -> None:
        if not self.free.wait(DEADLINE):
            raise OSError("test: the fsync was held past its deadline")
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        super()._fsync()


def event(n: int, scope: str | None = None) -> Event:
    e = Event({"specversion": "1.0", "id": f"e{n}", "source": "/s", "type": "t"}, b"x")
    e.dedup = scope
    return e


def accept_all(attributes: Any) -> str | None:
    return None


@pytest.fixture
async def held(tmp_path: Path) -> AsyncIterator[HeldSyncStore]:
    store = HeldSyncStore(SqliteSettings(tmp_path / "s.db"))
    await store.open(["a"])
    yield store
    store.free.set()
    await store.close()


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not predicate():  # noqa: ASYNC110 - a thread's state, not the loop's
            await asyncio.sleep(0.005)


async def caught_up(broker: EmbeddedBroker, sub: StoreSubscription) -> None:
    """Publish one event and take it: the subscription is then reading from memory
    (it starts by paging the store), which is the path a commit's offer feeds."""
    await broker.publish([event(0)])
    delivery = await asyncio.wait_for(sub.get(), DEADLINE)
    assert delivery.event.id == "e0"
    sub.ack(delivery.receipt)


HeldBroker = tuple[HeldSyncStore, EmbeddedBroker, StoreSubscription]


@pytest.fixture
async def held_broker(tmp_path: Path) -> AsyncIterator[HeldBroker]:
    """An embedded broker on a :class:`HeldSyncStore` with one trigger ``a`` whose
    subscription is caught up (reading from memory)."""
    store = HeldSyncStore(SqliteSettings(tmp_path / "s.db"))
    broker = EmbeddedBroker("ns/b", "Embedded", SharedStore(store))
    sub = broker.subscribe("a", accept_all)
    await broker.open()
    try:
        await caught_up(broker, sub)
        yield store, broker, sub
    finally:
        store.free.set()
        await broker.close()


async def test_an_event_is_delivered_while_its_fsync_is_held_and_answered_after(
    held_broker: HeldBroker,
) -> None:
    store, broker, sub = held_broker
    store.free.clear()
    publish = asyncio.create_task(broker.publish([event(1)]))
    delivery = await asyncio.wait_for(sub.get(), DEADLINE)
    assert delivery.event.id == "e1"
    assert not publish.done()  # the 202 waits for the held fsync
    sub.ack(delivery.receipt)  # an ack before the fsync: queued behind the append
    store.free.set()
    await asyncio.wait_for(publish, DEADLINE)
    await until(lambda: store.pending_count("a") == 0)
    assert store.stats().events == 0


async def test_a_concurrent_copy_waits_until_the_first_is_durable(
    held_broker: HeldBroker,
) -> None:
    store, broker, sub = held_broker
    store.free.clear()
    first = asyncio.create_task(broker.publish([event(1, scope="src")]))
    assert (await asyncio.wait_for(sub.get(), DEADLINE)).event.id == "e1"
    second = asyncio.create_task(broker.publish([event(1, scope="src")]))
    await asyncio.sleep(0)  # let it reach its wait (an ordering nudge, not a timing)
    assert not first.done()
    assert not second.done()
    store.free.set()
    await asyncio.wait_for(asyncio.gather(first, second), DEADLINE)
    assert broker.drops()[("", "duplicate")] == 1
    assert sub.take_nowait() is None  # the copy was never stored nor offered


async def test_a_failed_fsync_refuses_the_append_but_keeps_what_was_committed(
    held: HeldSyncStore,
) -> None:
    offered: list[int] = []
    first = event(1)
    held.fail_next = OSError(5, "Input/output error")
    with pytest.raises(StoreError, match="fsync failed"):
        await asyncio.wait_for(
            held.append("br", [Routed(first, ("a",))], committed=lambda: offered.append(1)),
            DEADLINE,
        )
    assert offered == [1]  # committed: offered, and pending
    assert held.pending_count("a") == 1
    assert [e.id for e in await held.load_pending("a", 0, 10)] == ["e1"]


async def test_a_failed_commit_offers_nothing(
    held: HeldSyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sqlite_rows, "insert_events", disk_full)
    offered: list[int] = []
    with pytest.raises(StoreError):
        await asyncio.wait_for(
            held.append("br", [Routed(event(1), ("a",))], committed=lambda: offered.append(1)),
            DEADLINE,
        )
    assert offered == []
    assert held.pending_count("a") == 0


@pytest.mark.parametrize("kind", ["NORMAL", "memory"])
async def test_without_a_separate_fsync_the_callback_runs_before_the_append_returns(
    tmp_path: Path, kind: str
) -> None:
    store: SqliteStore | MemoryStore
    if kind == "memory":
        store = MemoryStore()
    else:
        store = SqliteStore(SqliteSettings(tmp_path / "s.db", synchronous="NORMAL"))
    await store.open(["a"])
    try:
        offered: list[int] = []
        await asyncio.wait_for(
            store.append("br", [Routed(event(1), ("a",))], committed=lambda: offered.append(1)),
            DEADLINE,
        )
        assert offered == [1]
        assert store.pending_count("a") == 1
    finally:
        await store.close()


async def test_the_bound_counts_a_committed_append_once_while_its_fsync_waits(
    tmp_path: Path,
) -> None:
    store = HeldSyncStore(SqliteSettings(tmp_path / "s.db", max_events=3))
    await store.open(["a"])
    try:
        store.free.clear()
        committed = asyncio.Event()
        first = asyncio.create_task(
            store.append(
                "br", [Routed(event(1), ("a",)), Routed(event(2), ("a",))], committed=committed.set
            )
        )
        await asyncio.wait_for(committed.wait(), DEADLINE)
        # Two stored, none reserved any more: a third still fits (not 2 + 2 + 1 > 3).
        second = asyncio.create_task(store.append("br", [Routed(event(3), ("a",))]))
        await asyncio.sleep(0)  # let it pass the bound check (an ordering nudge)
        store.free.set()
        await asyncio.wait_for(asyncio.gather(first, second), DEADLINE)
        assert store.stats().events == 3
    finally:
        store.free.set()
        await store.close()
