"""Benchmark: what deduplication on (source, id) costs per event, and its memory.

Run from the repository root::

    .venv/bin/python bench/bench_dedup.py           # about 30 s
    .venv/bin/python bench/bench_dedup.py --quick   # smoke run

1. ``admit``: what a broker's publish pays for deduplication alone (``wants``, then
   ``admit``) on fresh keys with the window full (every new key evicts the oldest: the
   steady state), one event per call and 100 per call, against events marked not to
   deduplicate (the baseline of this run: ``wants`` only, what a plain POST pays by
   default). Also a duplicate's cost. CPU time of the process, not wall time: the
   machine is shared.
2. ``memory``: bytes per remembered key (tracemalloc), ids like GitHub delivery UUIDs.
3. ``publish``: the embedded durable broker (SQLite, real file, ``synchronous``
   NORMAL and FULL) publishing single-event batches from 64 concurrent senders, dedup
   off vs on, rounds alternated; events/s (wall) and CPU microseconds per event (all
   threads: the SQLite writer included), each with the ratio on/off.

Prints tables; numbers go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventing.broker.dedup import Deduplicator, DedupWindow
from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.events import AttributeValue, Event

SOURCE = "https://github.com/Codertocat/Hello-World"


def make_event(n: int, scope: str) -> Event:
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": f"{uuid.UUID(int=n)}",
        "source": SOURCE,
        "type": "dev.knative.source.github.push",
    }
    event = Event(attributes, b'{"ref": "refs/heads/main"}')
    event.dedup = scope
    return event


async def time_admit(dedup: Deduplicator, batches: list[list[Event]]) -> float:
    """Seconds per event for what a broker's publish does first: ask :meth:`wants`,
    and admit the batch when it says so."""
    count = sum(len(b) for b in batches)
    start = time.process_time()  # CPU time: the machine is shared, wall time is not ours
    for batch in batches:
        if dedup.wants(batch):
            async with dedup.admit(batch):
                pass
    return (time.process_time() - start) / count


async def bench_admit(events: int, max_ids: int) -> list[list[str]]:
    rows: list[list[str]] = []
    for per_call in (1, 100):
        results: dict[str, list[float]] = {"off": [], "on": [], "duplicate": []}
        for _ in range(3):
            for mode in ("off", "on"):
                dedup = Deduplicator(DedupWindow(max_ids=max_ids, seconds=3600))
                warm = [[make_event(n, "s")] for n in range(max_ids)]  # fill the window
                await time_admit(dedup, warm)
                scope = "s" if mode == "on" else ""
                fresh = [make_event(max_ids + n, scope) for n in range(events)]
                batches = [fresh[i : i + per_call] for i in range(0, events, per_call)]
                results[mode].append(await time_admit(dedup, batches))
                if mode == "on":
                    again = [make_event(max_ids + n, "s") for n in range(events)]
                    batches = [again[i : i + per_call] for i in range(0, events, per_call)]
                    results["duplicate"].append(await time_admit(dedup, batches))
        base = statistics.median(results["off"])
        for mode, values in results.items():
            value = statistics.median(values)
            rows.append(
                [
                    f"admit, {per_call}/call",
                    mode,
                    f"{value * 1e6:.2f}",
                    f"{(value - base) * 1e6:+.2f}",
                ]
            )
    return rows


def bench_memory(keys: int) -> float:
    dedup = Deduplicator(DedupWindow(max_ids=keys, seconds=3600))

    async def fill() -> None:
        for start in range(0, keys, 1000):
            async with dedup.admit([make_event(n, "s") for n in range(start, start + 1000)]):
                pass

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    asyncio.run(fill())
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert dedup.remembered() == keys
    return (after - before) / keys


async def publish_rate(
    directory: Path, synchronous: Literal["FULL", "NORMAL"], scope: str, events: int
) -> tuple[float, float]:
    """Events/s (wall) and CPU microseconds per event (every thread of the process)."""
    store = SqliteStore(SqliteSettings(directory / f"{uuid.uuid4().hex}.db", synchronous))
    broker = EmbeddedBroker("bench/b", "Embedded", SharedStore(store))
    broker.subscribe("bench/t", lambda attributes: None)
    await broker.open()
    counter = iter(range(events))
    try:

        async def sender() -> None:
            for n in counter:
                await broker.publish([make_event(n, scope)])

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(sender() for _ in range(64)))
        wall, used = time.perf_counter() - start, time.process_time() - cpu
        return events / wall, used / events * 1e6
    finally:
        await broker.close()


async def bench_publish(events: int, rounds: int) -> list[list[str]]:
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for synchronous in ("NORMAL", "FULL"):
            rates: dict[str, list[float]] = {"off": [], "on": []}
            cpus: dict[str, list[float]] = {"off": [], "on": []}
            for _ in range(rounds):
                for mode, scope in (("off", ""), ("on", "s")):
                    rate, cpu = await publish_rate(Path(tmp), synchronous, scope, events)
                    rates[mode].append(rate)
                    cpus[mode].append(cpu)
            off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
            cpu_off, cpu_on = statistics.median(cpus["off"]), statistics.median(cpus["on"])
            rows.append(
                [
                    f"publish, {synchronous}",
                    f"{off:,.0f}",
                    f"{on:,.0f}",
                    f"{on / off:.2f}",
                    f"{cpu_off:.1f}",
                    f"{cpu_on:.1f}",
                    f"{cpu_on / cpu_off:.2f}",
                ]
            )
    return rows


def calibrate() -> float:
    """The machine's speed right now (it is shared): one dict store, in microseconds."""
    store: dict[int, int] = {}
    start = time.perf_counter()
    for n in range(200_000):
        store[n] = n
    return (time.perf_counter() - start) / 200_000 * 1e6


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    events, max_ids, keys, publish_events, rounds = (
        (2_000, 2_000, 10_000, 2_000, 1) if args.quick else (50_000, 100_000, 100_000, 8_000, 3)
    )
    print(f"python {platform.python_version()}, {platform.machine()}")
    print(f"calibration: one dict store costs {calibrate():.3f} us on this machine now")
    print()
    rows = asyncio.run(bench_admit(events, max_ids))
    print(table(["what", "mode", "CPU us/event", "vs off"], rows))
    print()
    print(f"memory: {bench_memory(keys):.0f} bytes per remembered key ({keys:,} keys)")
    print()
    print(
        table(
            [
                "embedded broker",
                "off ev/s",
                "on ev/s",
                "on/off",
                "off CPU us/ev",
                "on CPU us/ev",
                "on/off",
            ],
            asyncio.run(bench_publish(publish_events, rounds)),
        )
    )


if __name__ == "__main__":
    main()
