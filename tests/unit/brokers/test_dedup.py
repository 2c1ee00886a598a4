"""Deduplication on (source, id): the windows (count and time, with an injected clock,
no sleeps), scopes, the in-flight rule, and the embedded classes end to end over a
real SQLite file (durable across a reopen) and the in-memory store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from eventing.broker.dedup import DUPLICATE, INGRESS, Deduplicator, DedupWindow
from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.memory_store import MemoryStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.errors import StoreError
from eventing.events import AttributeValue, Event


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(
    event_id: str, source: str = "/s", scope: str | None = "src", body: bytes = b"{}"
) -> Event:
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": "t",
    }
    e = Event(attributes, body)
    e.dedup = scope
    return e


async def admit(dedup: Deduplicator, *events: Event) -> tuple[list[str], list[str]]:
    async with dedup.admit(events) as claim:
        pass
    return [e.id for e in claim.fresh], [e.id for e in claim.duplicates]


async def test_the_same_key_twice_is_a_duplicate_and_another_id_with_the_same_body_is_not() -> None:
    dedup = Deduplicator()
    assert await admit(dedup, event("a")) == (["a"], [])
    assert await admit(dedup, event("a")) == ([], ["a"])
    assert await admit(dedup, event("b")) == (["b"], [])  # same body, other id
    assert await admit(dedup, event("a", source="/other")) == (["a"], [])  # other source


async def test_twice_in_one_batch_stores_the_first_only() -> None:
    dedup = Deduplicator()
    assert await admit(dedup, event("a"), event("a"), event("b")) == (["a", "b"], ["a"])


async def test_the_count_bound_forgets_the_oldest_key() -> None:
    clock = Clock()
    dedup = Deduplicator(DedupWindow(max_ids=3, seconds=3600), clock=clock)
    for n in range(4):
        await admit(dedup, event(f"e{n}"))
    assert dedup.remembered() == 3
    assert await admit(dedup, event("e0")) == (["e0"], [])  # forgotten: stored again
    assert await admit(dedup, event("e3")) == ([], ["e3"])


async def test_the_time_bound_forgets_old_keys_with_an_injected_clock() -> None:
    clock = Clock()
    dedup = Deduplicator(DedupWindow(max_ids=100, seconds=60), clock=clock)
    await admit(dedup, event("a"))
    clock.now += 59.9
    assert await admit(dedup, event("a")) == ([], ["a"])
    clock.now += 0.2  # 60.1 s after "a" was accepted
    assert await admit(dedup, event("a")) == (["a"], [])


async def test_expired_keys_are_evicted_when_new_ones_arrive() -> None:
    clock = Clock()
    dedup = Deduplicator(DedupWindow(max_ids=100, seconds=10), clock=clock)
    for n in range(5):
        await admit(dedup, event(f"e{n}"))
    clock.now += 11
    await admit(dedup, event("late"))
    assert dedup.remembered() == 1


async def test_events_without_a_decision_follow_the_broker_ingress_setting() -> None:
    dedup = Deduplicator()
    assert await admit(dedup, event("a", scope=None), event("a", scope=None)) == (["a", "a"], [])
    dedup.configure(DedupWindow(), ingress=True)
    assert await admit(dedup, event("b", scope=None), event("b", scope=None)) == (["b"], ["b"])
    assert INGRESS in dedup.scopes


async def test_an_empty_scope_is_never_deduplicated_and_off_turns_everything_off() -> None:
    dedup = Deduplicator()
    assert await admit(dedup, event("a", scope=""), event("a", scope="")) == (["a", "a"], [])
    dedup.configure(DedupWindow(), ingress=True, enabled=False)
    assert await admit(dedup, event("a"), event("a")) == (["a", "a"], [])


async def test_a_key_is_looked_up_in_every_scope_of_the_broker() -> None:
    dedup = Deduplicator()
    dedup.scope("github", DedupWindow(max_ids=10, seconds=5))
    await admit(dedup, event("a", scope="github"))
    assert await admit(dedup, event("a", scope="other")) == ([], ["a"])


async def test_each_scope_keeps_its_own_window() -> None:
    clock = Clock()
    dedup = Deduplicator(DedupWindow(max_ids=100, seconds=3600), clock=clock)
    dedup.scope("short", DedupWindow(max_ids=100, seconds=10))
    await admit(dedup, event("a", scope="short"), event("b", scope="long"))
    clock.now += 20
    assert await admit(dedup, event("a", scope="short"), event("b", scope="long")) == (
        ["a"],
        ["b"],
    )


async def test_a_failed_store_releases_the_keys() -> None:
    dedup = Deduplicator()
    with pytest.raises(StoreError):
        async with dedup.admit([event("a")]):
            raise StoreError("full")
    assert await admit(dedup, event("a")) == (["a"], [])


async def test_a_copy_arriving_while_the_first_is_stored_waits_for_its_outcome() -> None:
    dedup = Deduplicator()
    go = asyncio.Event()
    entered = asyncio.Event()

    async def first(fail: bool) -> None:
        async with dedup.admit([event("a")]):
            entered.set()
            await go.wait()
            if fail:
                raise StoreError("refused")

    for fail, expected in ((False, ([], ["a"])), (True, (["a"], []))):
        dedup = Deduplicator()
        go.clear()
        entered.clear()
        task = asyncio.create_task(first(fail))
        await entered.wait()
        second = asyncio.create_task(admit(dedup, event("a")))
        await asyncio.sleep(0)  # let it reach the wait (an ordering nudge, not a timing)
        assert not second.done()
        go.set()
        if fail:
            with pytest.raises(StoreError):
                await task
        else:
            await task
        assert await second == expected


def test_windows_are_bounded() -> None:
    with pytest.raises(ValueError, match="max ids"):
        DedupWindow(max_ids=0)
    with pytest.raises(ValueError, match="window"):
        DedupWindow(seconds=0)


# --- the embedded classes ------------------------------------------------------------


def broker_on(store: SqliteStore | MemoryStore, clock: Clock | None = None) -> EmbeddedBroker:
    broker = EmbeddedBroker("ns/b", "Embedded", SharedStore(store))
    broker.subscribe("ns/t", lambda attributes: None)
    if clock is not None:
        broker.dedup.clock = clock
    return broker


def seen_rows(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT scope, source, id FROM seen ORDER BY id").fetchall()


async def test_the_durable_class_keeps_its_keys_across_a_restart(tmp_path: Path) -> None:
    settings = SqliteSettings(tmp_path / "events.db", synchronous="NORMAL")
    broker = broker_on(SqliteStore(settings))
    await broker.open()
    await broker.publish([event("a"), event("b", scope="")])
    assert seen_rows(settings.path) == [("src", "/s", "a")]  # committed with the event
    await broker.close()

    again = broker_on(SqliteStore(settings))
    await again.open()
    try:
        await again.publish([event("a"), event("b", scope="")])
        assert again.drops() == {("", DUPLICATE): 1}
        assert again.store.pending_count("ns/t") == 3  # a, b, and b again (not deduplicated)
    finally:
        await again.close()


async def test_the_durable_class_forgets_what_its_window_let_go(tmp_path: Path) -> None:
    settings = SqliteSettings(tmp_path / "events.db", synchronous="NORMAL")
    clock = Clock()
    broker = broker_on(SqliteStore(settings), clock)
    broker.dedup.configure(DedupWindow(max_ids=2, seconds=60), ingress=False)
    await broker.open()
    await broker.publish([event("a")])
    await broker.publish([event("b")])
    await broker.publish([event("c")])  # "a" evicted by count
    await broker.publish([event("d")])  # the eviction of "a" is written with this one
    assert [row[2] for row in seen_rows(settings.path)] == ["b", "c", "d"]
    await broker.close()

    clock.now += 61  # everything older than the window when reopened
    again = broker_on(SqliteStore(settings), clock)
    again.dedup.configure(DedupWindow(max_ids=2, seconds=60), ingress=False)
    await again.open()
    try:
        await again.publish([event("c")])
        assert again.dedup.remembered() == 1  # only "c": the loaded keys were too old
        assert again.drops() == {}
        assert [row[2] for row in seen_rows(settings.path)] == ["c"]
    finally:
        await again.close()


async def test_the_in_memory_class_deduplicates_in_memory() -> None:
    broker = broker_on(MemoryStore())
    await broker.open()
    try:
        await broker.publish([event("a")])
        await broker.publish([event("a")])
        assert broker.drops() == {("", DUPLICATE): 1}
        assert broker.store.pending_count("ns/t") == 1
    finally:
        await broker.close()


async def test_a_long_key_is_remembered_by_its_digest() -> None:
    dedup = Deduplicator()
    long_id = "x" * 5000
    assert await admit(dedup, event(long_id)) == ([long_id], [])
    assert await admit(dedup, event(long_id)) == ([], [long_id])
    assert await admit(dedup, event(long_id + "y")) == ([long_id + "y"], [])
    assert [(source, len(digest)) for source, digest in dedup.scopes["src"].keys] == [
        ("", 64),
        ("", 64),
    ]


async def test_a_source_window_wider_than_the_broker_s_keeps_its_keys_across_a_restart(
    tmp_path: Path,
) -> None:
    """Sources declare their windows after the broker opened: the loaded keys must not
    be cut to the broker's narrower window first."""
    settings = SqliteSettings(tmp_path / "events.db", synchronous="NORMAL")
    clock = Clock()
    broker = broker_on(SqliteStore(settings), clock)
    broker.dedup.configure(DedupWindow(max_ids=2, seconds=60), ingress=False)
    broker.dedup.scope("src", DedupWindow(max_ids=10, seconds=600))
    await broker.open()
    await broker.publish([event(f"e{n}") for n in range(5)])
    await broker.close()

    clock.now += 300  # past the broker's window, within the source's
    again = broker_on(SqliteStore(settings), clock)
    again.dedup.configure(DedupWindow(max_ids=2, seconds=60), ingress=False)
    await again.open()
    again.dedup.scope("src", DedupWindow(max_ids=10, seconds=600))  # as build_sources does
    try:
        await again.publish([event(f"e{n}") for n in range(5)])
        assert again.drops() == {("", DUPLICATE): 5}
    finally:
        await again.close()
