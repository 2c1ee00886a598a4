"""Triggers added and removed while an embedded broker runs (the reconciler's seam):
a new trigger sees only what is published after it subscribed, a refiltered one keeps
its backlog, an unsubscribed one releases it (pending rows and the events no other
trigger holds), for both stores; ``release_trigger`` lands after appends already submitted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.memory_store import MemoryStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.store import Routed, Store
from eventing.events import AttributeValue, Event


def event(n: int, type_: str = "t") -> Event:
    return Event({"specversion": "1.0", "id": f"e{n}", "source": "/s", "type": type_}, b"x")


def of_type(type_: str):  # type: ignore[no-untyped-def]
    def check(attributes: Mapping[str, AttributeValue]) -> str | None:
        return None if attributes.get("type") == type_ else "filtered"

    return check


@pytest.fixture(params=["sqlite", "memory"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    store: Store = (
        SqliteStore(SqliteSettings(tmp_path / "s.db"))
        if request.param == "sqlite"
        else MemoryStore()
    )
    b = EmbeddedBroker("ns/b", "Embedded", SharedStore(store))
    b.subscribe("old", of_type("a"))
    await b.open()
    yield b
    await b.close()


async def test_new_trigger_sees_events_from_then_on(broker: EmbeddedBroker) -> None:
    await broker.publish([event(1, "a")])
    sub = broker.subscribe("new", of_type("a"))
    await broker.publish([event(2, "a")])
    got = await asyncio.wait_for(sub.get(), 5)
    assert got.event.id == "e2"
    assert await sub.backlog() == 1


async def test_refilter_keeps_the_backlog(broker: EmbeddedBroker) -> None:
    await broker.publish([event(1, "a"), event(2, "b")])
    await broker.refilter("old", of_type("b"))
    await broker.publish([event(3, "a"), event(4, "b")])
    sub = broker._subs["old"]
    ids = [(await asyncio.wait_for(sub.get(), 5)).event.id for _ in range(2)]
    assert ids == ["e1", "e4"]  # what matched at acceptance, by the filter of the time


async def test_unsubscribe_releases_the_backlog(broker: EmbeddedBroker) -> None:
    other = broker.subscribe("other", of_type("a"))
    await broker.publish([event(1, "a"), event(2, "a")])
    assert broker.store.stats().events == 2
    await broker.unsubscribe("old")
    assert broker.store.pending_count("old") == 0
    assert broker.store.stats().events == 2  # "other" still holds them
    for _ in range(2):
        other.ack((await asyncio.wait_for(other.get(), 5)).receipt)
    await broker.unsubscribe("other")
    assert broker.store.stats().events == 0
    await broker.publish([event(3, "a")])  # matches no trigger any more: not stored
    assert broker.store.stats().events == 0


async def test_release_lands_after_appends_already_submitted(tmp_path: Path) -> None:
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    await store.open(["t"])
    try:
        append = asyncio.ensure_future(store.append("b", [Routed(event(1), ("t",))]))
        await asyncio.sleep(0)  # the append is queued to the writer
        assert await store.release_trigger("t") == 1
        await append
        assert store.pending_count("t") == 0
        assert store.stats().events == 0
    finally:
        await store.close()
