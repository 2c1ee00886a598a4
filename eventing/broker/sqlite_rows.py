"""The SQLite store's statements and row helpers (the layout is in
:mod:`eventing.broker.sqlite_schema`).

Everything here runs inside one group's transaction, on the event loop, so the
per-event work is kept to a tuple per row, and rows go to SQLite in a few
set-based statements per group, not one per event: a JSON list walked by
``json_each`` costs about 0.9 us per row against 2.3 for ``executemany`` (measured),
multi-row ``VALUES`` 2.2 against 3.6 for the event rows.

What a group changes in the per-trigger index (:class:`PendingIndex`) is collected
in :class:`Deltas` from what the statements returned, and applied by the store only
after the COMMIT, so the index always equals the committed rows.
"""

from __future__ import annotations

import itertools
import json
import json.scanner
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventing.broker.pending_index import PendingIndex
from eventing.broker.store import DeadLetter, Routed
from eventing.events import Event

_MANY = (
    "INSERT INTO pending_many (seq, trigger)"
    " SELECT s.value, t.key FROM json_each(?) AS t, json_each(t.value) AS s"
)
# Acks are checked against the index first (only pairs a trigger has pending go in),
# so the common case is one statement on the events rows by seq: an event that
# matched one trigger carries it (see sqlite_schema), and its ack deletes that row.
_ACK_SINGLE = (
    "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) AND trigger IS NOT NULL"
    " RETURNING seq, trigger, size"
)
# Row values against the (seq, trigger) key: SQLite searches the key per pair.
_ACK_MANY = (
    "DELETE FROM pending_many WHERE (seq, trigger) IN"
    " (SELECT s.value, t.key FROM json_each(?) AS t, json_each(t.value) AS s)"
    " RETURNING seq, trigger"
)
_RELEASE_SINGLE = (
    "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?2)) AND trigger = ?1"
    " RETURNING seq, size"
)
_RELEASE_MANY = (
    "DELETE FROM pending_many WHERE trigger = ?1 AND seq IN (SELECT value FROM json_each(?2))"
    " RETURNING seq"
)
# An event of several triggers goes once the last of its rows did.
_COLLECT = (
    "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) AND trigger IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM pending_many p WHERE p.seq = events.seq) RETURNING size"
)
_SEEN_RUN = (
    "INSERT OR REPLACE INTO seen (broker, scope, source, id, at)"
    " SELECT ?1, ?2, ?3, value, ?4 FROM json_each(?5)"
)
_FORGET_RUN = (
    "DELETE FROM seen WHERE broker = ? AND scope = ? AND source = ?"
    " AND id IN (SELECT value FROM json_each(?))"
)
_RUN = 8  # dedup keys sharing all but the id, from which one statement is cheaper
_EVENTS_CHUNK = 64  # rows per events INSERT (6 parameters each, far below SQLite's limit)
_EVENTS = {
    size: "INSERT INTO events (seq, broker, attrs, data, size, trigger) VALUES "  # noqa: S608
    + ", ".join(["(?, ?, ?, ?, ?, ?)"] * size)  # placeholders only: no value in the text
    for size in range(1, _EVENTS_CHUNK + 1)
}


@dataclass
class Deltas:
    """What one group changed, applied to the store's counters after its COMMIT."""

    events: int = 0
    bytes: int = 0
    added: dict[str, list[int]] = field(default_factory=dict)
    """Seqs each trigger has pending since this group, in order."""
    removed: list[tuple[str, int]] = field(default_factory=list)
    """(trigger, seq) pairs pending no more."""
    dead_letters: dict[str, int] = field(default_factory=dict)


def add_rows(
    broker: str,
    routed: Sequence[Routed],
    seq: int,
    event_rows: list[tuple[Any, ...]],
    many: dict[str, list[int]],
    d: Deltas,
) -> int:
    """The rows of one append, seqs from ``seq`` on (set on the events); returns the
    next seq. Per event: one tuple and one list append (in every commit, on the loop)."""
    add_event = event_rows.append
    added = d.added
    size_sum = 0
    for r in routed:
        event = r.event
        event.seq = seq
        data = event.data
        size = (len(data) if data else 0) + 64 * len(event.attributes)
        size_sum += size
        attrs = event.encoded or encode(event.attributes)
        triggers = r.triggers
        if len(triggers) == 1:
            trigger = triggers[0]
            add_event((seq, broker, attrs, data, size, trigger))
            seqs = added.get(trigger)
            if seqs is None:
                added[trigger] = [seq]
            else:
                seqs.append(seq)
        else:
            add_event((seq, broker, attrs, data, size, None))
            for trigger in triggers:
                many.setdefault(trigger, []).append(seq)
                added.setdefault(trigger, []).append(seq)
        seq += 1
    d.events += len(routed)
    d.bytes += size_sum
    return seq


def insert_events(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Event rows by multi-row ``VALUES`` statements of 64 rows and one for the
    remainder (64 statement texts, each cached by the sqlite3 module): 2.2 against 3.6
    us of CPU per row by ``executemany`` (measured, 256-row groups). The remainder is
    one statement, not one per binary digit of its size: fewer statements, less work
    on the loop before the commit that delivery waits for."""
    chain = itertools.chain.from_iterable
    done, count = 0, len(rows)
    while count - done >= _EVENTS_CHUNK:
        conn.execute(_EVENTS[_EVENTS_CHUNK], tuple(chain(rows[done : done + _EVENTS_CHUNK])))
        done += _EVENTS_CHUNK
    if count > done:
        conn.execute(_EVENTS[count - done], tuple(chain(rows[done:])))


def insert_many(conn: sqlite3.Connection, many: dict[str, list[int]]) -> None:
    """The rows of events that matched several triggers: one statement a group."""
    if many:
        conn.execute(_MANY, (encode_rows(many),))


def apply_acks(
    conn: sqlite3.Connection,
    d: Deltas,
    index: PendingIndex,
    acked: list[dict[str, list[int]]],
) -> None:
    """Delete the acked rows (``{trigger: [seq]}`` maps, read and not copied), then
    the events of several triggers that none has pending any more. Only what the
    statements deleted counts: an ack whose row is gone (the trigger released, a
    repeated ack) or that its trigger never had counts nothing."""
    present = index.present
    seqs: list[int] = []
    for acks in acked:
        for trigger, some in acks.items():
            seqs += present(trigger, some)
    if not seqs:
        return
    rows = conn.execute(_ACK_SINGLE, (encode_rows(seqs),)).fetchall()
    d.events -= len(rows)
    d.bytes -= sum(row[2] for row in rows)
    d.removed += [(row[1], row[0]) for row in rows]
    if len(rows) == len(seqs):
        return
    single = {row[0] for row in rows}
    many: dict[str, list[int]] = {}
    for acks in acked:
        for trigger, some in acks.items():
            left = [seq for seq in present(trigger, some) if seq not in single]
            if left:
                many.setdefault(trigger, []).extend(left)
    if many:
        pairs = conn.execute(_ACK_MANY, (encode_rows(many),)).fetchall()
        d.removed += [(trigger, seq) for seq, trigger in pairs]
        collect(conn, d, [seq for seq, _ in pairs])


def apply_release(conn: sqlite3.Connection, d: Deltas, index: PendingIndex, trigger: str) -> int:
    """Delete every row ``trigger`` has pending (committed, and appended earlier in
    this group); the number deleted."""
    seqs = index.seqs(trigger) + d.added.get(trigger, [])
    if not seqs:
        return 0
    encoded = encode_rows(seqs)
    rows = conn.execute(_RELEASE_SINGLE, (trigger, encoded)).fetchall()
    d.events -= len(rows)
    d.bytes -= sum(row[1] for row in rows)
    many = [row[0] for row in conn.execute(_RELEASE_MANY, (trigger, encoded)).fetchall()]
    collect(conn, d, many)
    d.removed += [(trigger, row[0]) for row in rows]
    d.removed += [(trigger, seq) for seq in many]
    return len(rows) + len(many)


def collect(conn: sqlite3.Connection, d: Deltas, released: list[int]) -> None:
    """Delete the events among ``released`` (of several triggers) that no trigger has
    pending any more."""
    if not released:
        return
    gone = conn.execute(_COLLECT, (encode_rows(released),)).fetchall()
    d.events -= len(gone)
    d.bytes -= sum(row[0] for row in gone)


def _runs(rows: Sequence[tuple[Any, ...]], key: int) -> dict[tuple[Any, ...], list[str]]:
    """Rows by everything but the id (column ``key`` of each row), ids in row order."""
    runs: dict[tuple[Any, ...], list[str]] = {}
    for row in rows:
        head = row[:key] + row[key + 1 :]
        ids = runs.get(head)
        if ids is None:
            runs[head] = [row[key]]
        else:
            ids.append(row[key])
    return runs


def remember(conn: sqlite3.Connection, rows: list[tuple[str, str, str, str, float]]) -> None:
    """Write deduplication keys. A publish's keys share broker, scope, source (a Kafka
    topic's) and time: those runs go as one statement over a JSON list of ids (row
    by row costs more CPU per row, see the module docstring); short runs (plain POSTs
    from many sources) stay row by row, which is cheaper for them."""
    single: list[tuple[str, str, str, str, float]] = []
    for (broker, scope, source, at), ids in _runs(rows, 3).items():
        if len(ids) >= _RUN:
            conn.execute(_SEEN_RUN, (broker, scope, source, at, encode_rows(ids)))
        else:
            single.extend((broker, scope, source, event_id, at) for event_id in ids)
    if single:
        conn.executemany(
            "INSERT OR REPLACE INTO seen (broker, scope, source, id, at) VALUES (?, ?, ?, ?, ?)",
            single,
        )


def forget(conn: sqlite3.Connection, rows: list[tuple[str, str, str, str]]) -> None:
    """Delete deduplication keys evicted from memory, by runs like :func:`remember`."""
    single: list[tuple[str, str, str, str]] = []
    for (broker, scope, source), ids in _runs(rows, 3).items():
        if len(ids) >= _RUN:
            conn.execute(_FORGET_RUN, (broker, scope, source, encode_rows(ids)))
        else:
            single.extend((broker, scope, source, event_id) for event_id in ids)
    if single:
        conn.executemany(
            "DELETE FROM seen WHERE broker = ? AND scope = ? AND source = ? AND id = ?", single
        )


def insert_dead_letter(
    conn: sqlite3.Connection,
    d: Deltas,
    broker: str,
    trigger: str,
    event: Event,
    attempts: int,
    reason: str,
    status: int | None,
    failed_at: float,
) -> None:
    conn.execute(
        "INSERT INTO dead_letters (broker, trigger, attrs, data, failed_at, attempts, reason,"
        " status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            broker,
            trigger,
            json.dumps(event.attributes, separators=(",", ":")),
            event.data,
            failed_at,
            attempts,
            reason,
            status,
        ),
    )
    d.dead_letters[trigger] = d.dead_letters.get(trigger, 0) + 1


def delete_dead_letters(conn: sqlite3.Connection, d: Deltas, ids: list[int]) -> int:
    deleted = 0
    for dl_id in ids:
        row = conn.execute(
            "DELETE FROM dead_letters WHERE id = ? RETURNING trigger", (dl_id,)
        ).fetchone()
        if row is not None:
            deleted += 1
            d.dead_letters[row[0]] = d.dead_letters.get(row[0], 0) - 1
    return deleted


def dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    dl_id, broker, trigger, attrs, data, failed_at, attempts, reason, status = row
    return DeadLetter(
        dl_id, broker, trigger, Event(json.loads(attrs), data), failed_at, attempts, reason, status
    )


def _json_encoder(*, ascii_only: bool = True) -> Callable[[Any], str]:
    """Compact JSON, as ``json.dumps(..., separators=(",", ":"))`` gives it, through
    the C encoder made once: ``json.dumps`` builds an encoder object per call, which
    was the largest per-event cost of the commits."""
    default = json.JSONEncoder(separators=(",", ":"), ensure_ascii=ascii_only)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return default.encode
    chunks = make(
        None,
        default.default,
        json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


def _json_decoder() -> Callable[[str], Any]:
    """``json.loads`` for the store's own rows, through the C scanner made once:
    ``json.loads`` checks its argument's type, builds no decoder but looks for
    whitespace around the value with a regular expression on every call, which was
    ~40 % of decoding a read-back event's attributes (3.4 against 2.0 us for ten
    string attributes). Anything but one compact value (a row of an older layout
    written with spaces, or not JSON at all) goes to ``json.loads``, which decodes
    it or raises as before."""
    make = getattr(json.scanner, "c_make_scanner", None)
    if make is None:  # an interpreter without the C accelerator
        return json.loads
    scan_once = make(json.JSONDecoder())

    def decode(text: str) -> Any:
        try:
            value, end = scan_once(text, 0)
        except StopIteration:
            return json.loads(text)
        if end != len(text):
            return json.loads(text)
        return value

    return decode


encode = _json_encoder()
encode_rows = _json_encoder(ascii_only=False)  # rows for json_each: no \u escapes to undo
decode = _json_decoder()
