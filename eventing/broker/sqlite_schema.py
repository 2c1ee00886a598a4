"""The store's tables, the migration of older files, and what ``open`` reads back.

Layout (schema version 1, ``PRAGMA user_version``):

* ``events``: one row per stored event, clustered by ``seq``. ``trigger`` is the one
  trigger that still has it pending when it matched exactly one (the common case), so
  that event needs no other row: its ack deletes the event row and nothing else.
* ``pending_many``: ``(seq, trigger)`` rows of the events that matched more than one
  trigger (their ``events.trigger`` is NULL), clustered by ``seq`` too.

Why clustered by ``seq`` and nothing by trigger: a fan-out group (100 events for 100
triggers) appends at the end of every B-tree it writes and acks delete near the start,
the same pages whatever the number of triggers. Version 0 kept every match in
``pending (trigger, seq)`` with an index on ``seq``: two B-trees per row, and one
clustered by trigger, which a group spread over many triggers scattered (measured in
docs/benchmarks.md, "Issue 14: fan-out (session 6)"). The per-trigger order that
reading a backlog needs is kept in memory (:mod:`eventing.broker.pending_index`),
rebuilt here at every open from one pass over the rows.

An event is pending for ``{events.trigger}`` when that is set, else for its rows in
``pending_many``; never both. An event with neither is done and deleted.
"""

from __future__ import annotations

import itertools
import operator
import sqlite3
from array import array
from dataclasses import dataclass, field

from eventing.broker.pending_index import PendingIndex

VERSION = 1

# ``pending`` is a view of every (trigger, seq) still pending, as the version-0 table
# was. Why it exists: an older release opening this file runs ``CREATE TABLE IF NOT
# EXISTS pending`` (a no-op: the name is taken) and then ``CREATE INDEX ... ON
# pending(seq)``, which fails on a view, so it stops at open with an error instead of
# finding no version-0 rows and deleting every event as delivered. (And SQL written
# against the old table, by an operator, still reads the same rows.)
_VIEW = (
    "CREATE VIEW IF NOT EXISTS pending (trigger, seq) AS"
    " SELECT trigger, seq FROM events WHERE trigger IS NOT NULL"
    " UNION ALL SELECT trigger, seq FROM pending_many"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, broker TEXT NOT NULL, attrs TEXT NOT NULL,
    data BLOB, size INTEGER NOT NULL, trigger TEXT);
CREATE TABLE IF NOT EXISTS pending_many (
    seq INTEGER NOT NULL, trigger TEXT NOT NULL, PRIMARY KEY (seq, trigger)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, broker TEXT NOT NULL, trigger TEXT NOT NULL,
    attrs TEXT NOT NULL, data BLOB, failed_at REAL NOT NULL, attempts INTEGER NOT NULL,
    reason TEXT NOT NULL, status INTEGER);
CREATE INDEX IF NOT EXISTS dead_letters_by_trigger ON dead_letters(trigger, id);
CREATE TABLE IF NOT EXISTS seen (
    broker TEXT NOT NULL, scope TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (broker, scope, source, id)) WITHOUT ROWID;
"""
SCHEMA += _VIEW + ";\n"

# Version 0 -> 1, in one transaction: an event with one pending row keeps its trigger
# on its own row, the others' rows move to pending_many; the old table and its seq
# index go.
_MIGRATE_0 = (
    "ALTER TABLE events ADD COLUMN trigger TEXT",
    # Keyed by seq, so the UPDATE below looks each event up instead of scanning.
    "CREATE TEMP TABLE single (seq INTEGER PRIMARY KEY, trigger TEXT NOT NULL)",
    "INSERT INTO temp.single SELECT seq, MIN(trigger) FROM pending"
    " GROUP BY seq HAVING COUNT(*) = 1",
    "UPDATE events SET trigger = (SELECT s.trigger FROM temp.single s WHERE s.seq = events.seq)"
    " WHERE seq IN (SELECT seq FROM temp.single)",
    "INSERT INTO pending_many (seq, trigger) SELECT seq, trigger FROM pending"
    " WHERE seq NOT IN (SELECT seq FROM temp.single) ORDER BY seq, trigger",
    "DROP TABLE temp.single",
    "DROP TABLE pending",
    _VIEW,
)


@dataclass
class Loaded:
    """What ``open`` reads back: the next seq, the events' count and bytes, each
    trigger's pending seqs and dead-letter count."""

    next_seq: int = 1
    events: int = 0
    bytes: int = 0
    index: PendingIndex = field(default_factory=PendingIndex)
    dead_letters: dict[str, int] = field(default_factory=dict)


def prepare(conn: sqlite3.Connection, triggers: list[str]) -> Loaded:
    """Create or migrate the tables, forget what left triggers had pending, and read
    back the state (in a thread, at open, in one transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        old = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending'"
        ).fetchone()
        # Statement by statement: ``executescript`` would commit first.
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        if version < 1 and old is not None:
            for statement in _MIGRATE_0:
                conn.execute(statement)
        if version < VERSION:
            conn.execute(f"PRAGMA user_version = {VERSION:d}")
        _forget_left(conn, triggers)
        loaded = _load(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return loaded


def _forget_left(conn: sqlite3.Connection, triggers: list[str]) -> None:
    """Remove the pending rows of triggers that are gone, then every event no trigger
    has pending any more (one pass over the events)."""
    if triggers:
        marks = ",".join("?" * len(triggers))
        conn.execute(
            f"DELETE FROM pending_many WHERE trigger NOT IN ({marks})",  # noqa: S608
            triggers,
        )
        left = f"trigger NOT IN ({marks})"
    else:
        conn.execute("DELETE FROM pending_many")
        left = "1"
    conn.execute(
        f"DELETE FROM events WHERE CASE WHEN trigger IS NOT NULL THEN {left} ELSE NOT EXISTS"  # noqa: S608
        " (SELECT 1 FROM pending_many p WHERE p.seq = events.seq) END",
        triggers,
    )


def _load(conn: sqlite3.Connection) -> Loaded:
    loaded = Loaded()
    # AUTOINCREMENT keeps the high-water mark in sqlite_sequence, so a seq is never
    # reused even after every event was deleted; the store assigns them itself.
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    loaded.next_seq = (row[0] if row else 0) + 1
    (
        loaded.events,
        loaded.bytes,
        singles,
        low,
        high,
        first,
        last,
    ) = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0), COUNT(trigger), MIN(IIF(trigger IS NULL,"
        " NULL, seq)), MAX(IIF(trigger IS NULL, NULL, seq)), MIN(trigger), MAX(trigger)"
        " FROM events"
    ).fetchone()
    by_trigger: dict[str, array[int]] = {}
    if singles and first == last and high - low + 1 == singles:
        # One trigger's unbroken run of seqs (a backlog that was never acked out of
        # order): no row needs reading.
        by_trigger[first] = array("q", range(low, high + 1))
    elif singles:
        by_trigger = _seqs_by_trigger(conn, one=first == last)
    many: dict[str, list[int]] = {}
    for seq, trigger in conn.execute("SELECT seq, trigger FROM pending_many"):
        many.setdefault(trigger, []).append(seq)
    for trigger, more in many.items():
        found = by_trigger.get(trigger)
        by_trigger[trigger] = array("q", sorted(more if found is None else [*found, *more]))
    for trigger, seqs in by_trigger.items():
        loaded.index.add(trigger, seqs)
    for trigger, n in conn.execute("SELECT trigger, COUNT(*) FROM dead_letters GROUP BY trigger"):
        loaded.dead_letters[trigger] = n
    return loaded


def _seqs_by_trigger(conn: sqlite3.Connection, *, one: bool) -> dict[str, array[int]]:
    """Each trigger's seqs of the events that carry it, as one array per trigger made
    by SQLite (``group_concat``) rather than a Python step per row; with ``one``
    trigger without the GROUP BY, whose sort is most of the time. The order inside a
    group is not promised: checked, and sorted if need be."""
    sql = "SELECT trigger, group_concat(seq) FROM events WHERE trigger IS NOT NULL"
    out: dict[str, array[int]] = {}
    for trigger, text in conn.execute(sql if one else f"{sql} GROUP BY trigger"):
        seqs = array("q", map(int, text.split(",")))
        if not all(map(operator.lt, seqs, itertools.islice(seqs, 1, None))):
            seqs = array("q", sorted(seqs))
        out[trigger] = seqs
    return out
