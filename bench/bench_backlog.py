"""A restart with a stored backlog (not a test; issue 14): how long the durable store
takes to open with it, to hand out its first event, and to hand out and ack all of it
through a trigger's ``StoreSubscription`` (paging from disk: the backlog is larger
than the subscription's memory), with the CPU of the process per event.

    .venv/bin/python bench/bench_backlog.py [--events 1000000] [--rounds 2]

The backlog (Kafka-source attributes as stored, 50-byte payloads, one trigger) is
written once into a temporary directory and copied afresh for every round, so each
round opens the same file as a restarted ``eventing run`` would. The consumer takes
events as the dispatcher does (a ``get``, then what ``take_nowait`` has) and acks each
at once: no delivery, so this is the store's and the subscription's part of a drain.
Compare trees alternately with ``bench/run_tree.py TREE TREE/bench/bench_backlog.py``.
The OS's page cache holds the file after the copy (a cold start reads more from disk).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import tempfile
import time
from pathlib import Path

import uvloop
from bench_dispatch import source_events

from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.stamps import now_rfc3339
from eventing.broker.store import Routed
from eventing.broker.subscription import StoreSubscription


def settings(path: Path, events: int) -> SqliteSettings:
    return SqliteSettings(path, max_events=events + 1)


async def write(path: Path, events: int) -> None:
    store = SqliteStore(settings(path, events))
    await store.open(["t"])
    arrival = now_rfc3339()
    for start in range(0, events, 2048):
        part = source_events(min(2048, events - start), "k", start=start, arrival=arrival)
        await store.append("b", [Routed(event, ("t",)) for event in part])
    await store.close()


async def drain(path: Path, events: int) -> tuple[float, float, float, float]:
    """(open s, first event s, all handed out and acked s, CPU µs per event)."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    store = SqliteStore(settings(path, events))
    await store.open(["t"])
    opened = time.perf_counter() - wall0
    subscription = StoreSubscription(store, "b", "t")
    subscription.push_to(lambda: None)
    total = store.pending_count("t")
    delivery = await subscription.get()
    first = time.perf_counter() - wall0
    subscription.ack(delivery.receipt)
    done = 1
    while done < total:
        subscription.ack((await subscription.get()).receipt)
        done += 1
        while (more := subscription.take_nowait()) is not None:
            subscription.ack(more.receipt)
            done += 1
        await asyncio.sleep(0)  # the acks' timer commits between pages, as in a run
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await store.close()
    return opened, first, wall, cpu / total * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as work:
        original = Path(work) / "original.db"
        uvloop.run(write(original, args.events))
        for n in range(args.rounds):
            copy = Path(work) / f"round{n}.db"
            shutil.copy(original, copy)
            opened, first, wall, cpu = uvloop.run(drain(copy, args.events))
            for leftover in Path(work).glob(f"round{n}.db*"):
                leftover.unlink()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"round {n}: {args.events:,} events: open {opened:.2f} s, first event"
                f" {first * 1e3:.0f} ms, all taken and acked in {wall:.2f} s"
                f" ({cpu:.1f} µs CPU per event), max RSS {rss:.0f} MB"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
