"""Pending-row layouts of the SQLite store, compared alone (not a test; issue 14).

    .venv/bin/python bench/bench_pending_layout.py [--backlogs 2000 50000] [--rounds 3]

The store path's SQL alone, on a WAL file as the store uses it (``synchronous =
OFF``, checkpoints every 4,000 pages): groups of 100 events of 1 KiB, each matching one
of N triggers (1 or 1,000, round robin), committed one group per transaction; once
the backlog passes ``--backlogs``, the oldest 256 events are acked (one transaction,
as the store's ack timer commits them, and the events no trigger has pending are
deleted). CPU microseconds per event (insert and ack transactions apart) and the
bytes written per event (``wchar`` of the process: the WAL frames), the best of
``--rounds``. Layouts:

- ``trigger-first``: ``pending (trigger, seq)`` WITHOUT ROWID plus an index on seq:
  the store's layout until issue 14's sixth session (schema version 0);
- ``seq-first``: ``pending (seq, trigger)`` only (per-trigger reads from memory);
- ``on-event``: the one trigger on the events row, no pending row (what the store
  does now for an event of one trigger; several triggers use ``seq-first`` rows).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

NESTED = "FROM json_each(?) AS t, json_each(t.value) AS s"
LAYOUTS: dict[str, dict[str, str]] = {
    "trigger-first": {
        "schema": "CREATE TABLE pending (trigger TEXT NOT NULL, seq INTEGER NOT NULL,"
        " PRIMARY KEY (trigger, seq)) WITHOUT ROWID; CREATE INDEX pending_by_seq ON pending(seq);",
        "insert": f"INSERT INTO pending (trigger, seq) SELECT t.key, s.value {NESTED}",
        "ack": f"DELETE FROM pending WHERE (trigger, seq) IN (SELECT t.key, s.value {NESTED})"
        " RETURNING seq",
    },
    "seq-first": {
        "schema": "CREATE TABLE pending (seq INTEGER NOT NULL, trigger TEXT NOT NULL,"
        " PRIMARY KEY (seq, trigger)) WITHOUT ROWID;",
        "insert": f"INSERT INTO pending (seq, trigger) SELECT s.value, t.key {NESTED}",
        "ack": f"DELETE FROM pending WHERE (seq, trigger) IN (SELECT s.value, t.key {NESTED})"
        " RETURNING seq",
    },
    "on-event": {
        "schema": "",
        "insert": "",
        "ack": "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))"
        " AND trigger IS NOT NULL RETURNING seq, trigger, size",
    },
}
COLLECT = (
    "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) AND NOT EXISTS "
    "(SELECT 1 FROM pending p WHERE p.seq = events.seq) RETURNING size"
)


def written() -> int:
    """Bytes this process passed to write() so far (the WAL frames, mostly)."""
    return int(Path("/proc/self/io").read_text().split("wchar:")[1].split()[0])


def run(layout: str, triggers: int, groups: int, backlog: int) -> tuple[float, float, float]:
    """(insert us/event, ack us/event, bytes written/event) after 20 warm-up groups."""
    spec, on_event = LAYOUTS[layout], layout == "on-event"
    columns = 6 if on_event else 5
    values = "INSERT INTO events VALUES " + ", ".join(["(" + ",".join("?" * columns) + ")"] * 100)
    with tempfile.TemporaryDirectory(prefix="bench-layout-") as work:
        conn = sqlite3.connect(Path(work) / "s.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA wal_autocheckpoint = 4000")
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, broker TEXT NOT NULL, attrs TEXT"
            " NOT NULL, data BLOB, size INTEGER NOT NULL" + (", trigger TEXT)" if on_event else ")")
        )
        if spec["schema"]:
            conn.executescript(spec["schema"])
        attrs = json.dumps({"specversion": "1.0", "id": "x" * 20, "source": "/f", "type": "f.1"})
        data = b"x" * 1024
        seq, outstanding = 1, []
        insert_cpu = ack_cpu = 0.0
        start_bytes = 0
        for group in range(groups + 20):
            if group == 20:
                insert_cpu = ack_cpu = 0.0
                start_bytes = written()
            began = time.process_time()
            rows: list[object] = []
            pending: dict[str, list[int]] = {}
            for k in range(100):
                trigger = f"default/t{(group * 100 + k) % triggers}"
                rows += [seq, "b", attrs, data, 1024] + ([trigger] if on_event else [])
                pending.setdefault(trigger, []).append(seq)
                outstanding.append((trigger, seq))
                seq += 1
            conn.execute("BEGIN")
            conn.execute(values, rows)
            if spec["insert"]:
                conn.execute(spec["insert"], (encode(pending),))
            conn.execute("COMMIT")
            insert_cpu += time.process_time() - began
            while len(outstanding) > backlog:
                began = time.process_time()
                done, outstanding[:] = outstanding[:256], outstanding[256:]
                conn.execute("BEGIN")
                if on_event:
                    conn.execute(spec["ack"], (encode([s for _, s in done]),)).fetchall()
                else:
                    acks: dict[str, list[int]] = {}
                    for trigger, s in done:
                        acks.setdefault(trigger, []).append(s)
                    gone = conn.execute(spec["ack"], (encode(acks),)).fetchall()
                    conn.execute(COLLECT, (encode([row[0] for row in gone]),)).fetchall()
                conn.execute("COMMIT")
                ack_cpu += time.process_time() - began
        events = groups * 100
        conn.close()
        return insert_cpu / events * 1e6, ack_cpu / events * 1e6, (written() - start_bytes) / events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlogs", nargs="+", type=int, default=[2000, 50000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--groups", type=int, default=1000, help="groups measured beyond the backlog"
    )
    args = parser.parse_args()
    print(
        f"{'backlog':>8} {'layout':<14} {'triggers':>8} {'insert us':>9} {'ack us':>7}"
        f" {'total us':>8} {'bytes/ev':>8}"
    )
    for backlog in args.backlogs:
        best: dict[tuple[str, int], tuple[float, float, float]] = {}
        for _ in range(args.rounds):
            for layout in LAYOUTS:
                for triggers in (1, 1000):
                    result = run(layout, triggers, args.groups + backlog // 100, backlog)
                    key = (layout, triggers)
                    if key not in best or sum(result[:2]) < sum(best[key][:2]):
                        best[key] = result
        for (layout, triggers), (ins, ack, size) in best.items():
            print(
                f"{backlog:>8} {layout:<14} {triggers:>8} {ins:>9.1f} {ack:>7.1f}"
                f" {ins + ack:>8.1f} {size:>8.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
