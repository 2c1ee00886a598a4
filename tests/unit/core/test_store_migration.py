"""A store file written by the previous layout (schema version 0: every match a row of
``pending (trigger, seq)``) opens: migrated in place, every trigger's backlog,
count, dead letter and deduplication key as it was, and then used as usual."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.store import Routed
from eventing.events import AttributeValue, Event

_VERSION_0 = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, broker TEXT NOT NULL, attrs TEXT NOT NULL,
    data BLOB, size INTEGER NOT NULL);
CREATE TABLE pending (
    trigger TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (trigger, seq)) WITHOUT ROWID;
CREATE INDEX pending_by_seq ON pending(seq);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, broker TEXT NOT NULL, trigger TEXT NOT NULL,
    attrs TEXT NOT NULL, data BLOB, failed_at REAL NOT NULL, attempts INTEGER NOT NULL,
    reason TEXT NOT NULL, status INTEGER);
CREATE INDEX dead_letters_by_trigger ON dead_letters(trigger, id);
CREATE TABLE seen (
    broker TEXT NOT NULL, scope TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (broker, scope, source, id)) WITHOUT ROWID;
"""

# seq -> the triggers that have it pending, as the old store left them.
_PENDING = {
    1: ["a"],
    2: ["a", "b"],
    3: ["b"],
    4: ["a", "b", "gone"],
    5: ["gone"],  # a trigger no longer in the manifests: forgotten at open
    6: [],  # delivered to all, not yet collected
    7: ["c"],
}


def attrs(seq: int) -> dict[str, AttributeValue]:
    return {"specversion": "1.0", "id": f"e{seq}", "source": "/s", "type": "t"}


def write_version_0(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_VERSION_0)
        for seq, triggers in _PENDING.items():
            conn.execute(
                "INSERT INTO events (seq, broker, attrs, data, size) VALUES (?, 'br', ?, ?, ?)",
                (seq, json.dumps(attrs(seq)), b"x" * seq, seq + 64 * 4),
            )
            conn.executemany(
                "INSERT INTO pending (trigger, seq) VALUES (?, ?)", [(t, seq) for t in triggers]
            )
        conn.execute(
            "INSERT INTO dead_letters (broker, trigger, attrs, data, failed_at, attempts,"
            " reason, status) VALUES ('br', 'a', '{}', NULL, 1.0, 3, 'HTTP 500', 500)"
        )
        conn.execute("INSERT INTO seen VALUES ('br', '', '/s', 'e1', 1.0)")


async def test_a_version_0_file_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    write_version_0(path)
    store = SqliteStore(SqliteSettings(path))
    await store.open(["a", "b", "c"])
    try:
        stats = store.stats()
        assert {t: n for t, n in stats.pending.items() if n} == {"a": 3, "b": 3, "c": 1}
        assert stats.events == 5  # 1, 2, 3, 4, 7: 5 and 6 had no trigger left
        assert stats.bytes == sum(seq + 64 * 4 for seq in (1, 2, 3, 4, 7))
        assert stats.dead_letters == {"a": 1}
        assert [e.seq for e in await store.load_pending("a", 0, 10)] == [1, 2, 4]
        assert [e.seq for e in await store.load_pending("b", 2, 10)] == [3, 4]
        loaded = await store.load_pending("c", 0, 10)
        assert [(e.seq, e.attributes["id"], e.data) for e in loaded] == [(7, "e7", b"x" * 7)]
        assert await store.load_seen("br") == [("", "/s", "e1", 1.0)]
        # Acks of single and shared events; an event goes with its last trigger's ack.
        await store.ack("a", [1, 2, 4])
        assert store.pending_count("a") == 0
        assert store.stats().events == 4  # 1 went; 2 and 4 still pending for b
        await store.ack("b", [2, 3, 4])
        assert store.stats().events == 1
        # New events get seqs after the old ones.
        fresh = Event(attrs(8), b"new")
        await store.append("br", [Routed(fresh, ("a", "c"))])
        assert fresh.seq == 8
        assert [e.seq for e in await store.load_pending("c", 0, 10)] == [7, 8]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master").fetchall())
        assert kinds["pending"] == "view"  # the version-0 table went; see the next test
        assert "pending_by_seq" not in kinds
        assert sorted(conn.execute("SELECT trigger, seq FROM pending")) == [
            ("a", 8),
            ("c", 7),
            ("c", 8),
        ]
    again = SqliteStore(SqliteSettings(path))
    await again.open(["a", "b", "c"])
    try:
        assert {t: n for t, n in again.stats().pending.items() if n} == {"a": 1, "c": 2}
        assert [e.seq for e in await again.load_pending("c", 0, 10)] == [7, 8]
    finally:
        await again.close()


async def test_reopen_reads_back_each_backlog_shape(tmp_path: Path) -> None:
    """The index is rebuilt at open however the backlog looks: one trigger's unbroken
    run of seqs, the same with a gap, and with a shared event after it."""
    path = tmp_path / "s.db"
    expected: list[int] = []
    for step in ("run", "gap", "shared"):
        store = SqliteStore(SqliteSettings(path))
        await store.open(["a", "b"])
        try:
            assert [e.seq for e in await store.load_pending("a", 0, 100)] == expected
            assert store.pending_count("a") == len(expected)
            routed = [Routed(Event(attrs(n), b"x"), ("a",)) for n in range(5)]
            if step == "shared":
                routed.append(Routed(Event(attrs(9), b"y"), ("a", "b")))
            await store.append("br", routed)
            expected += [r.event.seq for r in routed]
            if step == "gap":
                await store.ack("a", [expected[2]])
                del expected[2]
        finally:
            await store.close()
    again = SqliteStore(SqliteSettings(path))
    await again.open(["a", "b"])
    try:
        assert [e.seq for e in await again.load_pending("a", 0, 100)] == expected
        assert [e.seq for e in await again.load_pending("b", 0, 100)] == expected[-1:]
        assert again.stats().events == len(expected)
    finally:
        await again.close()


def open_as_version_0(path: Path) -> None:
    """What a release before the migration runs when it opens a store: its schema with
    IF NOT EXISTS, then it forgets every event without a version-0 pending row."""
    old_schema = _VERSION_0.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ").replace(
        "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS "
    )
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.executescript(old_schema)
        conn.execute("BEGIN")
        conn.execute("DELETE FROM pending WHERE trigger NOT IN ('a', 'b', 'c')")
        conn.execute("DELETE FROM events WHERE seq NOT IN (SELECT seq FROM pending)")
        conn.execute("COMMIT")


async def test_an_older_release_cannot_open_a_migrated_file_and_so_deletes_nothing(
    tmp_path: Path,
) -> None:
    """Going back to a release from before the migration must not lose the backlog: it
    finds ``pending`` a view, fails at its schema (a view cannot be indexed) before its
    clean-up, and the newer release still has every event."""
    path = tmp_path / "s.db"
    store = SqliteStore(SqliteSettings(path))
    await store.open(["a", "b"])
    try:
        await store.append("br", [Routed(Event(attrs(n), b"x"), ("a",)) for n in range(3)])
        await store.append("br", [Routed(Event(attrs(9), b"y"), ("a", "b"))])
    finally:
        await store.close()
    with pytest.raises(sqlite3.OperationalError, match="views may not be indexed"):
        open_as_version_0(path)
    again = SqliteStore(SqliteSettings(path))
    await again.open(["a", "b"])
    try:
        assert again.stats().events == 4
        assert again.pending_count("a") == 4
        assert again.pending_count("b") == 1
    finally:
        await again.close()
