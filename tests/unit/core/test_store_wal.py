"""The SQLite store commits on the event loop with SQLite's own checkpoints off; the
checkpointer thread must keep the WAL file bounded however the writes come, and a
store closed and opened again must hold exactly what was left pending (issue 14,
tail latency)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.store import Routed
from eventing.events import Event
from tests.support.live import until

DEADLINE = 10.0
BOUND = 1024 * 1024


def event(n: int) -> Event:
    return Event(
        {"specversion": "1.0", "id": f"e{n}", "source": "/s", "type": "t"}, os.urandom(2048)
    )


def size(path: Path) -> int:
    """The file's size, 0 when it is gone."""
    return path.stat().st_size if path.exists() else 0


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_the_wal_stays_bounded_under_writes_back_to_back(
    tmp_path: Path, synchronous: str
) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(
        SqliteSettings(path, synchronous=synchronous, max_wal_bytes=BOUND)  # type: ignore[arg-type]
    )
    await store.open(["a", "b"])
    wal = Path(f"{path}-wal")
    largest = 0
    try:
        n = 0
        for _ in range(600):  # ~30 MB of frames: thirty times the bound
            events = [event(n + i) for i in range(16)]
            n += len(events)
            appended = [store.append("br", [Routed(e, ("a", "b"))]) for e in events]
            await asyncio.wait_for(asyncio.gather(*appended), DEADLINE)
            for e in events:
                store.ack_nowait("a", e.seq)
                store.ack_nowait("b", e.seq)
            largest = max(largest, size(wal))
        # One commit past the bound is the most the file can exceed it by (the next
        # waits for the checkpoint): 16 appended events, or at most 256 acked ones of
        # 2 KiB (the pages they leave), in 4 KiB pages.
        assert largest <= BOUND + 1024 * 1024, largest
        await until(lambda: store.stats().events == 0, "acks committed in later groups")
    finally:
        await store.close()
    assert size(wal) == 0  # checkpointed into the database at close


async def test_what_was_pending_at_close_is_there_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(SqliteSettings(path, max_wal_bytes=BOUND))
    await store.open(["a"])
    kept: list[str] = []
    for n in range(2000):
        e = event(n)
        await asyncio.wait_for(store.append("br", [Routed(e, ("a",))]), DEADLINE)
        if n % 7:
            store.ack_nowait("a", e.seq)
        else:
            kept.append(e.id)
    await store.close()
    again = SqliteStore(SqliteSettings(path))
    await again.open(["a"])
    try:
        assert again.pending_count("a") == len(kept)
        loaded = await again.load_pending("a", 0, len(kept) + 10)
        assert [e.id for e in loaded] == kept
    finally:
        await again.close()


async def test_appends_waiting_for_a_checkpoint_commit_at_close(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(SqliteSettings(path, max_wal_bytes=256 * 1024))
    await store.open(["a"])
    # The checkpoint the store asks for when the WAL passes its bound never ends here
    # (test only): commits stay paused until close.
    asked: list[object] = []
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer.complete = asked.append  # type: ignore[method-assign,assignment]
    first = [event(n) for n in range(200)]  # ~400 KiB in one group: past the bound
    await asyncio.wait_for(store.append("br", [Routed(e, ("a",)) for e in first]), DEADLINE)
    assert asked  # commits paused
    waiting = [
        asyncio.ensure_future(store.append("br", [Routed(event(n), ("a",))]))
        for n in range(200, 210)
    ]
    await until(lambda: len(store._ops) == len(waiting), "appends queued behind the pause")
    assert not any(task.done() for task in waiting)
    await store.close()
    await asyncio.wait_for(asyncio.gather(*waiting), DEADLINE)  # all committed, none failed
    again = SqliteStore(SqliteSettings(path))
    await again.open(["a"])
    try:
        assert again.pending_count("a") == 210
    finally:
        await again.close()
