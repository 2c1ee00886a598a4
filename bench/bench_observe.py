"""What watching costs the hot path (not a test): the tail tap on every publish and the
oldest-age bookkeeping on every delivery, against the same calls without them, measured
in the same run on stubs (so only our added work is timed, not SQLite or HTTP).

    .venv/bin/python bench/bench_observe.py [--events 200000]

Prints nanoseconds per event for each case and the ratio of the added cost to the
baseline call.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from eventing.app.aging import AgingSubscription
from eventing.app.observatory import TappedBroker
from eventing.broker.base import Delivery, Receipt
from eventing.events import Event
from eventing.ui.tap import Tap

BATCH = 1  # the ingress publishes one event per request


class StubBroker:
    key = "default/default"

    async def publish(self, events: Sequence[Event]) -> None:
        return None


class StubSubscription:
    trigger = "default/t"

    def __init__(self, events: list[Event]) -> None:
        self.listeners: list[Callable[[], None]] = []
        self._events = iter(events)
        self._seq = 0

    async def get(self) -> Delivery:
        self._seq += 1
        return Delivery(next(self._events), self._seq)

    def ack(self, receipt: Receipt) -> None:
        return None

    async def dead_letter(
        self, receipt: Receipt, event: Event, *, attempts: int, reason: str, status: int | None
    ) -> None:
        return None

    async def backlog(self) -> int:
        return 0

    def cached_backlog(self) -> int:
        return 0

    def local_backlog(self) -> int:
        return 0


def events(n: int) -> list[Event]:
    now = time.time()
    out = []
    for i in range(n):
        event = Event(
            {"specversion": "1.0", "id": str(i), "source": "/b", "type": "t"}, b"x" * 1024
        )
        event.arrived = now
        out.append(event)
    return out


async def timed(run: Callable[[], Coroutine[Any, Any, None]], n: int) -> float:
    start = time.perf_counter()
    await run()
    return (time.perf_counter() - start) / n * 1e9


async def publish_loop(publisher: Any, batch: list[list[Event]]) -> None:
    for events_ in batch:
        await publisher.publish(events_)


async def deliver_loop(subscription: Any, n: int) -> None:
    for _ in range(n):
        delivery = await subscription.get()
        subscription.ack(delivery.receipt)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    n = args.events
    sample = events(n)
    batches = [sample[i : i + BATCH] for i in range(0, n, BATCH)]
    rows: list[tuple[str, float, float]] = []

    base = await timed(lambda: publish_loop(StubBroker(), batches), n)
    tap = Tap()
    quiet = await timed(lambda: publish_loop(TappedBroker(StubBroker(), tap), batches), n)
    with tap.watch(queue_size=n + 1):
        watched = await timed(lambda: publish_loop(TappedBroker(StubBroker(), tap), batches), n)
    rows.append(("publish, no tap (baseline)", base, 1.0))
    rows.append(("publish, tapped, no watcher", quiet, quiet / base))
    rows.append(("publish, tapped, one tail", watched, watched / base))

    raw = await timed(lambda: deliver_loop(StubSubscription(sample), n), n)
    aged = await timed(lambda: deliver_loop(AgingSubscription(StubSubscription(sample)), n), n)
    rows.append(("get+ack, plain (baseline)", raw, 1.0))
    rows.append(("get+ack, with oldest age", aged, aged / raw))

    print(f"{'case':32} {'ns/event':>10} {'x baseline':>11}")
    for name, ns, ratio in rows:
        print(f"{name:32} {ns:10.0f} {ratio:11.2f}")


if __name__ == "__main__":
    asyncio.run(main())
