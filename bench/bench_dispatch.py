"""Dispatcher CPU benchmark (not a test): the CPU microseconds of this process per
delivered event through one ``Dispatcher`` and ``HttpSink`` to a lean local subscriber
in its own process, without ingress or store around them: what the delivery path
costs, measured in one process so that the load other processes put on the machine
moves it less than it moves an end-to-end rate.

    .venv/bin/python bench/bench_dispatch.py [--events 30000] [--rounds 3] [--flaky]

``--flaky``: the subscriber answers 500 to every event's first attempt (the retry
path; ``retry: 3``, 10 ms linear backoff without jitter). The subscription is a
small in-memory one here (it hands events over as the embedded broker's does:
``push_to``/``take_nowait``) and acks count only. Compare trees alternately with
``bench/run_tree.py TREE TREE/bench/bench_dispatch.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp
import uvloop
from bench_send import events, subscriber

from eventing.broker.base import Delivery
from eventing.delivery.dispatcher import Dispatcher
from eventing.delivery.policy import RetryPolicy
from eventing.events import Event
from eventing.metrics import Metrics
from sinks.http import HttpSink
from sinks.httpclient import Pool


class MemorySubscription:
    """The events of one round, handed over without a task switch; counts acks."""

    def __init__(self, batch: list[Event], done: asyncio.Future[None]) -> None:
        self.trigger = "bench/t"
        self.listeners: list[Callable[[], None]] = []
        self._waiting = deque(Delivery(e, n) for n, e in enumerate(batch))
        self._total = len(batch)
        self._done = done
        self.acked = 0
        self._ready: Callable[[], None] | None = None

    def push_to(self, ready: Callable[[], None]) -> bool:
        self._ready = ready
        ready()
        return True

    def take_nowait(self) -> Delivery | None:
        return self._waiting.popleft() if self._waiting else None

    async def get(self) -> Delivery:
        await asyncio.Future()  # everything goes by take_nowait
        raise AssertionError

    def ack(self, receipt: Any) -> None:
        self.acked += 1
        if self.acked == self._total and not self._done.done():
            self._done.set_result(None)

    async def dead_letter(self, receipt: Any, event: Event, **_: Any) -> None:
        self.ack(receipt)

    async def backlog(self) -> int:
        return len(self._waiting)

    def cached_backlog(self) -> int:
        return len(self._waiting)

    def local_backlog(self) -> int:
        return len(self._waiting)


async def run(url: str, batch: list[Event]) -> tuple[float, float]:
    """(CPU µs per delivered event, events/s)."""
    pool = Pool()
    session = aiohttp.ClientSession()
    sink = HttpSink(url, pool, session)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    subscription = MemorySubscription(batch, done)

    async def no_reply(_: Event) -> None:
        return None

    policy = RetryPolicy(retry=3, backoff_policy="linear", backoff_delay=0.01, jitter=0)
    dispatcher = Dispatcher(
        trigger="bench/t",
        subscription=subscription,
        sink=sink,
        policy=policy,
        dead_letter=None,
        publish_reply=no_reply,
        metrics=Metrics(),
        fast=sink,
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    runner = loop.create_task(dispatcher.run())
    await done
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await dispatcher.stop(loop.time() + 5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    pool.close()
    await session.close()
    return cpu / len(batch) * 1e6, len(batch) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flaky", action="store_true", help="fail every first attempt")
    args = parser.parse_args()
    kind = "flaky" if args.flaky else "lean"
    with subscriber(kind) as url:
        cpus: list[float] = []
        for n in range(args.rounds):
            cpu, rate = uvloop.run(run(f"{url}/events", events(args.events, f"bench-{n}")))
            cpus.append(cpu)
            print(f"round {n}: {cpu:6.1f} µs CPU per delivered event, {rate:8,.0f}/s")
        print(f"median {statistics.median(cpus):.1f} µs CPU per delivered event ({kind})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
