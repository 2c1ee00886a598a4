"""Dispatcher CPU benchmark (not a test): the CPU microseconds of this process per
delivered event through one ``Dispatcher`` and ``HttpSink`` to a lean local subscriber
in its own process, without ingress or store around them: what the delivery path
costs, measured in one process so that the load other processes put on the machine
moves it less than it moves an end-to-end rate.

    .venv/bin/python bench/bench_dispatch.py [--events 30000] [--rounds 3] [--flaky]
    .venv/bin/python bench/bench_dispatch.py --triggers 1 1000   # the fan-out shape
    .venv/bin/python bench/bench_dispatch.py --triggers 1 1000 --calls --events 20000
    .venv/bin/python bench/bench_dispatch.py --backlog --events 100000 --rounds 3

``--triggers``: that many dispatchers (one trigger each) sharing the one ``Pool``, so
its per-host limit (256 connections) is shared as in ``eventing run``; events are
offered as the embedded broker offers a committed batch: 100 at a time, each to the
next trigger in turn, a new batch whenever fewer than 2,000 are outstanding (so at
1,000 triggers every dispatcher holds one or two events and the host limit, not
``maxInFlight``, bounds what is in flight, as in bench_fanout's e2e run). Each round runs
every count in turn; per count the median CPU per event and the median of the
rounds' ratios 1st count / that count.

``--backlog``: the spill path instead: a real durable ``SqliteStore`` holding
``--events`` events of one trigger (Kafka-source attributes, stamped as stored) before
the clock starts, drained through ``StoreSubscription`` (paging from disk, since the
backlog is larger than its memory) and ``AgingSubscription`` as in ``eventing run``:
reading back, taking, delivering and acking, with the store's threads in the CPU.

``--flaky``: the subscriber answers 500 to every event's first attempt (the retry
path; ``retry: 3``, 10 ms linear backoff without jitter). The subscription is a
small in-memory one here (it hands events over as the embedded broker's does:
``push_to``/``take_nowait``) and acks count only. Compare trees alternately with
``bench/run_tree.py TREE TREE/bench/bench_dispatch.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from bench_send import events, subscriber

from eventing.app.aging import AgingSubscription
from eventing.app.runtime import tune_gc
from eventing.broker.base import Delivery
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.stamps import now_rfc3339, stamp
from eventing.broker.store import Routed
from eventing.broker.subscription import StoreSubscription
from eventing.delivery.dispatcher import Dispatcher
from eventing.delivery.policy import RetryPolicy
from eventing.events import Event
from eventing.metrics import Metrics
from sinks.http import HttpSink
from sinks.httpclient import Pool


class MemorySubscription:
    """The events of one round, handed over without a task switch; counts acks
    (and tells ``on_ack``, the fan-out feed, of each)."""

    def __init__(
        self,
        batch: list[Event],
        done: asyncio.Future[None],
        trigger: str = "bench/t",
        on_ack: Callable[[], None] | None = None,
    ) -> None:
        self.trigger = trigger
        self.listeners: list[Callable[[], None]] = []
        self._waiting = deque(Delivery(e, n) for n, e in enumerate(batch))
        self._total = len(batch)
        self._done = done
        self._on_ack = on_ack
        self.acked = 0
        self._ready: Callable[[], None] | None = None

    def push_to(self, ready: Callable[[], None]) -> bool:
        self._ready = ready
        for _ in self._waiting:  # once per event, as the store's subscription does
            ready()
        return True

    def offer(self, delivery: Delivery) -> None:
        """One more event committed for this trigger (the fan-out feed)."""
        self._waiting.append(delivery)
        if self._ready is not None:
            self._ready()

    def take_nowait(self) -> Delivery | None:
        return self._waiting.popleft() if self._waiting else None

    async def get(self) -> Delivery:
        await asyncio.Future()  # everything goes by take_nowait
        raise AssertionError

    def ack(self, receipt: Any) -> None:
        self.acked += 1
        if self._on_ack is not None:
            self._on_ack()
        elif self.acked == self._total and not self._done.done():
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
    cpu, wall = await drive(dispatcher, done)
    pool.close()
    await session.close()
    return cpu / len(batch) * 1e6, len(batch) / wall


async def drive(dispatcher: Dispatcher, done: asyncio.Future[None]) -> tuple[float, float]:
    """Run ``dispatcher`` until ``done``, then stop it: (CPU s, wall s) of the run."""
    loop = asyncio.get_running_loop()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    runner = loop.create_task(dispatcher.run())
    await done
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await dispatcher.stop(loop.time() + 5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    return cpu, wall


def source_events(
    n: int, prefix: str, *, start: int = 0, arrival: str | None = None
) -> list[Event]:
    """Events ``start`` .. ``start + n`` of a topic as the Kafka source stores them
    (``PlainWrap`` + the emit's stamps), stamped with ``arrival`` (default: now)."""
    source = f"/apis/v1/namespaces/bench/kafkasources/{prefix}#{prefix}-topic"
    arrival = arrival or now_rfc3339()
    out = []
    for i in range(start, start + n):
        partition, offset = i % 3, i // 3
        event = Event(
            {
                "specversion": "1.0",
                "id": f"partition:{partition}/offset:{offset}",
                "source": source,
                "type": "dev.knative.kafka.event",
                "subject": f"partition:{partition}#{offset}",
                "time": "2026-12-05T02:20:11.123Z",
            },
            b'{"order": 12345, "status": "paid", "amount": 99.5}',
        )
        stamp(event, arrival)
        out.append(event)
    return out


async def drain(url: str, count: int, prefix: str) -> tuple[float, float]:
    """(CPU µs per delivered event, events/s): a stored backlog of ``count`` events
    drained through the store's subscription (see ``--backlog``)."""
    trigger = "bench/t"
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as work:
        store = SqliteStore(SqliteSettings(Path(work) / "store.db"))
        await store.open([trigger])
        batch = source_events(count, prefix)
        for start in range(0, count, 1024):
            await store.append(
                "bench/b", [Routed(e, (trigger,)) for e in batch[start : start + 1024]]
            )
        del batch
        pool = Pool()
        session = aiohttp.ClientSession()
        sink = HttpSink(url, pool, session)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        acked = 0
        real_ack = store.ack_nowait

        def ack_nowait(trigger: str, seq: int) -> None:
            nonlocal acked
            real_ack(trigger, seq)
            acked += 1
            if acked == count and not done.done():
                done.set_result(None)

        store.ack_nowait = ack_nowait  # type: ignore[method-assign]

        async def no_reply(_: Event) -> None:
            return None

        subscription = AgingSubscription(StoreSubscription(store, "bench/b", trigger))
        dispatcher = Dispatcher(
            trigger=trigger,
            subscription=subscription,
            sink=sink,
            policy=RetryPolicy(retry=3, backoff_policy="linear", backoff_delay=0.01, jitter=0),
            dead_letter=None,
            publish_reply=no_reply,
            metrics=Metrics(),
            fast=sink,
        )
        tune_gc()
        cpu, wall = await drive(dispatcher, done)
        pool.close()
        await session.close()
        await store.close()
    return cpu / count * 1e6, count / wall


class Feed:
    """Offers ``batch`` to the subscriptions as committed batches of the embedded broker
    would: ``per_commit`` events at a time, event i to subscription i mod N, a next
    batch (in a later loop turn) whenever fewer than ``window`` are outstanding."""

    def __init__(
        self,
        subs: list[MemorySubscription],
        batch: list[Event],
        done: asyncio.Future[None],
        window: int = 2000,
        per_commit: int = 100,
    ) -> None:
        self.subs = subs
        self.batch = batch
        self.done = done
        self.window = window
        self.per_commit = per_commit
        self.offered = 0
        self.acked = 0
        self._soon = False

    def ack(self) -> None:
        self.acked += 1
        if self.acked == len(self.batch) and not self.done.done():
            self.done.set_result(None)
        self.wanted()

    def wanted(self) -> None:
        offered = self.offered
        if not self._soon and offered < len(self.batch) and offered - self.acked < self.window:
            self._soon = True
            asyncio.get_running_loop().call_soon(self.commit)

    def commit(self) -> None:
        self._soon = False
        subs, n = self.subs, len(self.subs)
        end = min(len(self.batch), self.offered + self.per_commit)
        for i in range(self.offered, end):
            subs[i % n].offer(Delivery(self.batch[i], i))
        self.offered = end
        self.wanted()


async def fan_out(url: str, batch: list[Event], triggers: int) -> tuple[float, float]:
    """(CPU µs per delivered event, events/s) through ``triggers`` dispatchers."""
    pool = Pool()
    session = aiohttp.ClientSession()
    sink = HttpSink(url, pool, session)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    subs: list[MemorySubscription] = []
    feed = Feed(subs, batch, done)
    subs += [MemorySubscription([], done, f"bench/t{i}", feed.ack) for i in range(triggers)]

    async def no_reply(_: Event) -> None:
        return None

    policy = RetryPolicy(retry=3, backoff_policy="linear", backoff_delay=0.01, jitter=0)
    metrics = Metrics()
    dispatchers = [
        Dispatcher(
            trigger=sub.trigger,
            subscription=sub,
            sink=sink,
            policy=policy,
            dead_letter=None,
            publish_reply=no_reply,
            metrics=metrics,
            fast=sink,
        )
        for sub in subs
    ]
    runners = [loop.create_task(d.run()) for d in dispatchers]
    await asyncio.sleep(0)  # every run() has registered its pump
    tune_gc()  # as ``eventing run`` does once started
    cpu0, wall0 = time.process_time(), time.perf_counter()
    feed.wanted()
    await done
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    deadline = loop.time() + 5
    for d in dispatchers:
        d.stop_taking()
    await asyncio.gather(*(d.stop(deadline) for d in dispatchers))
    for r in runners:
        r.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
    pool.close()
    await session.close()
    return cpu / len(batch) * 1e6, len(batch) / wall


def fan_out_table(url: str, counts: list[int], events_: int, rounds: int) -> None:
    """Each round runs every count in turn (so a change in the machine's load hits all
    of them alike); per count the median, and the median over rounds of the round's
    ratio 1st count / that count."""
    cpus: dict[int, list[float]] = {n: [] for n in counts}
    for r in range(rounds):
        for n in counts:
            cpu, rate = uvloop.run(fan_out(url, events(events_, f"fan-{n}-{r}"), n))
            cpus[n].append(cpu)
            print(f"round {r} {n:>5} triggers: {cpu:6.1f} µs CPU per event, {rate:8,.0f}/s")
    print(f"{'triggers':>8} {'median us/ev':>13} {'1st / N':>8}")
    first = cpus[counts[0]]
    for n in counts:
        ratio = statistics.median(a / b for a, b in zip(first, cpus[n], strict=True))
        print(f"{n:>8} {statistics.median(cpus[n]):>13.1f} {ratio:>8.2f}")


def calls_table(url: str, counts: list[int], events_: int) -> None:
    """Python function calls (cProfile, builtins included) per delivered event: the
    calls for ``2 * events_`` minus those for ``events_``, so set-up and shutdown cancel
    out. The machine's load does not move it; how events batch per loop turn does."""
    for n in counts:
        uvloop.run(fan_out(url, events(2000, f"warm-{n}"), n))
        totals = []
        for size in (events_, 2 * events_):
            profile = cProfile.Profile()
            profile.enable()
            uvloop.run(fan_out(url, events(size, f"calls-{n}-{size}"), n))
            profile.disable()
            totals.append(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]
        print(f"{n:>5} triggers: {(totals[1] - totals[0]) / events_:6.1f} calls per event")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flaky", action="store_true", help="fail every first attempt")
    parser.add_argument("--backlog", action="store_true", help="drain a stored backlog")
    parser.add_argument("--triggers", nargs="+", type=int, help="fan-out: dispatcher counts")
    parser.add_argument(
        "--calls", action="store_true", help="with --triggers: Python calls per event instead"
    )
    args = parser.parse_args()
    kind = "flaky" if args.flaky else "lean"
    with subscriber(kind) as url:
        if args.triggers and args.calls:
            calls_table(f"{url}/events", args.triggers, args.events)
            return 0
        if args.triggers:
            fan_out_table(f"{url}/events", args.triggers, args.events, args.rounds)
            return 0
        cpus: list[float] = []
        if args.backlog:
            kind = "a stored backlog drained"
        for n in range(args.rounds):
            if args.backlog:
                cpu, rate = uvloop.run(drain(f"{url}/events", args.events, f"bench-{n}"))
            else:
                cpu, rate = uvloop.run(run(f"{url}/events", events(args.events, f"bench-{n}")))
            cpus.append(cpu)
            print(f"round {n}: {cpu:6.1f} µs CPU per delivered event, {rate:8,.0f}/s")
        print(f"median {statistics.median(cpus):.1f} µs CPU per delivered event ({kind})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
