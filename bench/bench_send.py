"""Delivery-side CPU benchmark (not a test): the CPU microseconds of this process per
delivery through ``HttpSink.try_send`` (the dispatcher's fast path) to a lean local
subscriber in its own process, with ``--concurrency`` requests in flight. It isolates
what issue 14 item 2 is about: building the request, writing it, the per-request
timeout, parsing the response and the outcome, without the broker around it.

    .venv/bin/python bench/bench_send.py [--events 60000] [--concurrency 64] [--rounds 3]

Compare trees alternately with ``bench/run_tree.py TREE bench/bench_send.py``. Events
look like the pipeline bench's after ingress: the four required attributes, a
``datacontenttype``, ``knativearrivaltime`` and 1 KiB of JSON data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import uvloop
from bench_pipeline import wait_http

from eventing.delivery.sink import Outcome
from eventing.events import Event
from eventing.workloads.replica import free_port
from sinks.http import HttpSink
from sinks.httpclient import Pool

ROOT = Path(__file__).resolve().parents[1]
DATA = b'{"order":1,"note":"' + b"x" * 990 + b'"}'


def events(n: int, prefix: str = "bench") -> list[Event]:
    return [
        Event(
            {
                "specversion": "1.0",
                "id": f"{prefix}-{i}",
                "source": "/bench",
                "type": "bench.event",
                "datacontenttype": "application/json",
                "knativearrivaltime": "2026-12-04T18:00:00.123456Z",
            },
            DATA,
        )
        for i in range(n)
    ]


async def run(url: str, batch: list[Event], concurrency: int) -> tuple[float, float, int]:
    """(CPU µs per delivery, deliveries/s, failures)."""
    pool = Pool()
    session = aiohttp.ClientSession()
    sink = HttpSink(url, pool, session)
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    pending = iter(batch)
    state = {"done": 0, "failed": 0}

    def start() -> None:
        event = next(pending, None)
        if event is None:
            return
        if not sink.try_send(event, timeout=10.0, structured=False, done=answered):
            task = loop.create_task(sink.send(event, timeout=10.0, structured=False))
            task.add_done_callback(lambda t: answered(t.result()))

    def answered(outcome: Outcome) -> None:
        state["done"] += 1
        if outcome.status != 202:
            state["failed"] += 1
        if state["done"] == len(batch):
            finished.set_result(None)
        else:
            start()

    warm = min(concurrency, len(batch))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(warm):
        start()
    await finished
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    pool.close()
    await session.close()
    return cpu / len(batch) * 1e6, len(batch) / wall, state["failed"]


@contextlib.contextmanager
def subscriber(kind: str) -> Iterator[str]:
    """``bench_servers.py KIND`` on a free port in its own process; its URL while up."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bench_servers.py"), kind, str(port)]
    )
    try:
        wait_http(f"{url}/stats", timeout=20)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with subscriber("lean") as url:
        batch = events(args.events)
        cpus: list[float] = []
        for n in range(args.rounds):
            cpu, rate, failed = uvloop.run(run(f"{url}/events", batch, args.concurrency))
            cpus.append(cpu)
            print(f"round {n}: {cpu:6.1f} µs CPU per delivery, {rate:8,.0f}/s, failed {failed}")
        print(f"median {statistics.median(cpus):.1f} µs CPU per delivery")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
