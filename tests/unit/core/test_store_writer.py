"""The SQLite store's writer thread is the only way into the store: it must survive
anything one operation does, answer every waiting caller, say when it cannot write,
and keep acks whose commit failed until they commit (issue 11, defects 2 and 12a)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventing.broker import sqlite_rows
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.store import Routed
from eventing.errors import StoreError
from eventing.events import Event


def event(n: int) -> Event:
    return Event({"specversion": "1.0", "id": f"e{n}", "source": "/s", "type": "t"}, b"x")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    await opened.open(["a"])
    yield opened
    await opened.close()


async def wait_for(predicate: Any, what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110 - polling the store's own state
            await asyncio.sleep(0.01)


async def test_an_id_out_of_range_fails_alone_and_the_writer_lives_on(
    store: SqliteStore,
) -> None:
    # The bad deletion and a good append travel in the same commit group.
    bad = store.delete_dead_letters([99999999999999999999999])
    good = store.append("br", [Routed(event(1), ("a",))])
    results = await asyncio.wait_for(asyncio.gather(bad, good, return_exceptions=True), 10)
    assert isinstance(results[0], StoreError)
    assert results[1] is None
    await asyncio.wait_for(store.append("br", [Routed(event(2), ("a",))]), 10)
    assert store.pending_count("a") == 2
    assert store.writable()


async def test_acks_whose_commit_failed_are_retried_and_readiness_follows(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = event(1)
    await store.append("br", [Routed(first, ("a",))])
    real = sqlite_rows.apply_acks
    failing = True

    def disk_full(*args: Any) -> None:
        if failing:
            raise sqlite3.OperationalError("database or disk is full")
        real(*args)

    monkeypatch.setattr(sqlite_rows, "apply_acks", disk_full)
    store.ack_nowait("a", first.seq)
    await wait_for(lambda: not store.writable(), "the store to say it cannot write")
    assert store.pending_count("a") == 1
    failing = False
    await wait_for(lambda: store.pending_count("a") == 0, "the ack to be retried")
    assert store.writable()
    assert store.stats().events == 0
