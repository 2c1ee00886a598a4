"""The embedded durable broker's latency alone, without HTTP: from ``publish`` to a
trigger's consumer having the event (what delivery waits for) and to ``publish``
returning (what the 202 waits for), at a steady rate of small groups while the event
loop also runs 0.3 ms of other Python work every millisecond (as ingress and delivery
do in the real process, holding the GIL the store's threads need). Compare trees in
alternated runs::

    .venv/bin/python bench/bench_commit_latency.py [--seconds 6] [--fsync full]
    .venv/bin/python bench/run_tree.py /tmp/before bench/bench_commit_latency.py ...

Percentiles move with the machine's load: compare only alternated runs, with
``uptime`` beside. The last line is the CPU time the store's commit groups took per
event, on whichever thread runs them (the event loop's since issue 14's fifth
session, a writer thread's before): measured by wrapping the store's private
``_commit_guarded``, which both designs have.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.events import Event

SIZES = (1, 3, 7, 5, 11, 13, 15, 9, 6, 2)  # events per publish, in turn (7.2 on average)
INTERVAL = 0.0025  # seconds between publishes: about 2,900 events/s
BUSY = 0.0003  # seconds of other Python work on the loop ...
BUSY_EVERY = 0.001  # ... this often


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0.0


async def run(seconds: float, fsync: Literal["FULL", "NORMAL"]) -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-commit-"))
    store = SqliteStore(SqliteSettings(directory / "s.db", synchronous=fsync))
    commit_cpu = _time_commits(store)
    broker = EmbeddedBroker("default/bench", "Embedded", SharedStore(store))
    sub = broker.subscribe("t", lambda attributes: None)
    await broker.open()
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    sent: dict[str, float] = {}
    delivered: list[float] = []
    answered: list[float] = []

    def busy() -> None:
        began = time.perf_counter()
        while time.perf_counter() - began < BUSY:
            pass
        if loop.time() < stop:
            loop.call_later(BUSY_EVERY - BUSY, busy)

    async def consume() -> None:
        while True:
            delivery = await sub.get()
            began = sent.pop(delivery.event.id, None)
            if began is not None:
                delivered.append(time.perf_counter() - began)
            sub.ack(delivery.receipt)

    async def publish(events: list[Event]) -> None:
        began = time.perf_counter()
        for event in events:
            sent[event.id] = began
        await broker.publish(events)
        answered.append(time.perf_counter() - began)

    consumer = asyncio.create_task(consume())
    busy()
    publishes: set[asyncio.Task[None]] = set()
    n = turn = 0
    while loop.time() < stop:
        size = SIZES[turn % len(SIZES)]
        events = [
            Event(
                {"specversion": "1.0", "id": f"e{n + i}", "source": "/bench", "type": "t"},
                b"x" * 1024,
            )
            for i in range(size)
        ]
        n, turn = n + size, turn + 1
        task = asyncio.create_task(publish(events))
        publishes.add(task)
        task.add_done_callback(publishes.discard)
        await asyncio.sleep(INTERVAL)
    await asyncio.gather(*publishes)
    async with asyncio.timeout(10):
        while sent:  # noqa: ASYNC110 - the consumer's own progress
            await asyncio.sleep(0.01)
    consumer.cancel()
    await broker.close()
    print(f"{n:,} events in {turn:,} publishes, fsync={fsync}, {seconds:g} s")
    print(f"{'from publish to':<28} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}  (ms)")
    for name, values in (("consumer has it", delivered), ("publish returned (202)", answered)):
        cells = " ".join(f"{percentile(values, p):>7.2f}" for p in (50, 90, 99, 100))
        print(f"{name:<28} {cells}")
    print(f"CPU in commit groups: {commit_cpu[0] / n * 1e6:.1f} us per event")


def _time_commits(store: SqliteStore) -> list[float]:
    """Sum the thread CPU time of every commit group into the returned cell."""
    total = [0.0]
    real = store._commit_guarded

    def timed(conn: Any, batch: Any) -> None:
        began = time.thread_time()
        try:
            real(conn, batch)
        finally:
            total[0] += time.thread_time() - began

    store._commit_guarded = timed  # type: ignore[method-assign]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--fsync", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - optional speed-up
        pass
    asyncio.run(run(args.seconds, "FULL" if args.fsync == "full" else "NORMAL"))


if __name__ == "__main__":
    main()
