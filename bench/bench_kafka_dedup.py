"""What a KafkaSource's deduplication costs the broker per event: a key per record
against one per emit and partition (``sources.kafka.positions``), against none.

Run from the repository root::

    .venv/bin/python bench/bench_kafka_dedup.py [--events 100000] [--rounds 3]

The embedded durable broker (SQLite in a temporary directory, the default ``FULL``
synchronous setting, one trigger) is fed through the emit the sources get
(``eventing.app.emitter.SourceEmitter``) with batches like the source's: 512 wrapped
records over 3 partitions, one ``emit`` in flight. Three ways, rounds alternated:

- ``off``: the source's deduplication off (no key);
- ``per record``: every event keeps its key (the source before session 6, or
  ``eventing.local/dedup: "true"``'s per-record keys);
- ``by position``: only the last event of each partition in an emit keeps its key.

The window starts full (``--max-ids`` keys of an older run) so every new key evicts
one: the steady state of a busy topic. CPU microseconds of this process per event
(every thread: SQLite's work included), median of the rounds; nothing is delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventing.app.dedup_config import SourceDedup
from eventing.app.emitter import SourceEmitter
from eventing.broker.dedup import DedupWindow
from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.events import Event
from sources.kafka.positions import key_last

SCOPE = "KafkaSource/default/bench"
SOURCE = "/apis/v1/namespaces/default/kafkasources/bench#orders"
BATCH = 512
PARTITIONS = 3
DATA = b'{"order": 12345, "status": "paid", "amount": 99.5}'


class Record:
    __slots__ = ("offset", "partition", "topic")

    def __init__(self, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = "orders", partition, offset


def batch(start: int, mode: str) -> list[tuple[Record, Event]]:
    items = []
    for n in range(start, start + BATCH):
        partition, offset = n % PARTITIONS, n // PARTITIONS
        event = Event(
            {
                "specversion": "1.0",
                "id": f"partition:{partition}/offset:{offset}",
                "source": SOURCE,
                "type": "dev.knative.kafka.event",
                "subject": f"partition:{partition}#{offset}",
                "key": str(n % 50),
                "partitionkey": str(n % 50),
            },
            DATA,
        )
        event.dedup = None if mode == "per record" else ""
        items.append((Record(partition, offset), event))
    if mode == "by position":
        key_last(items)
    return items


async def run(mode: str, events: int, max_ids: int, work: Path) -> float:
    """CPU µs per event of publishing ``events`` the ``mode`` way."""
    store = SqliteStore(SqliteSettings(work / f"{mode.replace(' ', '-')}-{time.time_ns()}.db"))
    broker = EmbeddedBroker("default/default", "Embedded", SharedStore(store))
    broker.subscribe("default/bench", lambda attributes: None)
    broker.dedup.durable = True
    broker.dedup.scope(SCOPE, DedupWindow(max_ids=max_ids))
    window = broker.dedup.scopes[SCOPE]
    now = time.time()
    for n in range(max_ids):  # full: every new key evicts the oldest
        window.keys[("/older", f"k{n}")] = now
    await broker.open()
    emit = SourceEmitter(
        broker, "default/default", SourceDedup(SCOPE if mode != "off" else ""), lambda: None
    )
    batches = [batch(start, mode) for start in range(0, events, BATCH)]
    pending = 0
    try:
        start = time.process_time()
        for items in batches:
            await emit([e for _, e in items])
            pending += len(items)
            if pending >= 20_000:  # keep the backlog (and the file) bounded, as delivery would
                await broker.store.release_trigger("default/bench")
                pending = 0
        return (time.process_time() - start) / events * 1e6
    finally:
        await broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-ids", type=int, default=100_000)
    args = parser.parse_args()
    modes = ["off", "per record", "by position"]
    results: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="bench-kafka-dedup-") as work:
        for _ in range(args.rounds):
            for mode in modes:
                results[mode].append(asyncio.run(run(mode, args.events, args.max_ids, Path(work))))
    base: Callable[[str], float] = lambda m: statistics.median(results[m])  # noqa: E731
    print(f"{args.events} events in batches of {BATCH}, window of {args.max_ids} keys (full)")
    print(f"{'mode':<12} {'CPU µs/event':>13} {'- off':>8}  rounds")
    for mode in modes:
        rounds = ", ".join(f"{v:.1f}" for v in results[mode])
        print(f"{mode:<12} {base(mode):>13.1f} {base(mode) - base('off'):>8.1f}  [{rounds}]")


if __name__ == "__main__":
    main()
