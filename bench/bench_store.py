"""The embedded broker's store path alone: ``EmbeddedBroker.publish`` of batches (as a
KafkaSource's emit hands them over) into the durable SQLite store, one subscription
taking and acking every event as a dispatcher would. Prints events/s and the process's
CPU microseconds per event (writer, syncer and event loop together), with the
deduplication claim on and off, so a change to the store path can be compared against
another tree in alternated runs::

    .venv/bin/python bench/bench_store.py [--batches 150] [--batch 256] [--fsync full]
    .venv/bin/python bench/run_tree.py /tmp/before bench/bench_store.py ...

CPU per event is the figure to compare on a shared machine: the wall-clock rate moves
with the load, the CPU much less.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Literal

from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.stamps import now_rfc3339, stamp
from eventing.events import Event

SOURCE = "/apis/v1/namespaces/default/kafkasources/bench#orders"
DATA = b'{"order": 12345, "status": "paid", "amount": 99.5}'


def batch(size: int, first: int, dedup: bool) -> list[Event]:
    """Events shaped like a KafkaSource's (ids partition/offset, a Kafka type)."""
    events = []
    for offset in range(first, first + size):
        event = Event(
            {
                "specversion": "1.0",
                "id": f"partition:0/offset:{offset}",
                "source": SOURCE,
                "type": "dev.knative.kafka.event",
                "subject": f"partition:0#{offset}",
                "time": "2026-12-04T10:00:00.123Z",
            },
            DATA,
        )
        event.dedup = "kafkasource/default/bench" if dedup else ""
        events.append(event)
    return events


async def run(batches: int, size: int, dedup: bool, sync: Literal["FULL", "NORMAL"]) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as work:
        store = SqliteStore(SqliteSettings(Path(work) / "store.db", synchronous=sync))
        broker = EmbeddedBroker("default/default", "MTChannelBasedBroker", SharedStore(store))
        subscription = broker.subscribe("default/bench", lambda _attributes: None)
        await broker.open()
        total = (batches + 1) * size
        acked = 0
        all_acked = asyncio.Event()

        async def consume() -> None:
            nonlocal acked
            while True:
                delivery = await subscription.get()
                subscription.ack(delivery.receipt)
                acked += 1
                if acked == total:
                    all_acked.set()

        consumer = asyncio.create_task(consume(), name="bench consumer")
        try:
            await broker.publish(batch(size, 10**9, dedup))  # warm up
            made = [batch(size, n * size, dedup) for n in range(batches)]
            wall, cpu = time.perf_counter(), time.process_time()
            for events in made:
                arrival = now_rfc3339()
                for event in events:
                    stamp(event, arrival)
                await broker.publish(events)
            await asyncio.wait_for(all_acked.wait(), 300)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await broker.close()
    n = batches * size
    return (
        f"{'on' if dedup else 'off':<6} {sync:<7} {n / wall:>10,.0f} {cpu / n * 1e6:>10.1f}"
        f"   (load {os.getloadavg()[0]:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--fsync", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    sync: Literal["FULL", "NORMAL"] = "FULL" if args.fsync == "full" else "NORMAL"
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        pass
    print(f"{args.batches} publishes of {args.batch} events, one trigger acking\n")
    print(f"{'dedup':<6} {'fsync':<7} {'events/s':>10} {'CPU us/ev':>10}")
    for dedup in (False, True):
        print(asyncio.run(run(args.batches, args.batch, dedup, sync)))


if __name__ == "__main__":
    main()
