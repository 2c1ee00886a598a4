"""Many triggers delivering to one host share its connection limit. Beyond it the
events wait parked in their dispatchers (no task each), each dispatcher queued once
for the host; every event is delivered once, never more than the limit at a time;
stopping with events waiting leaves them pending, and the next run delivers them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from tests.support.mesh import (
    broker_doc,
    manifests,
    post_batch,
    run_system,
    serve,
    trigger_doc,
    wait_until,
)

if TYPE_CHECKING:
    from eventing.app.runtime import Running

TRIGGERS = 12
HOST_LIMIT = 4
PER_TRIGGER = 15


class Subscriber:
    """Records (trigger, id) pairs and the most requests at once; may hold answers."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        self.now = 0
        self.most = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await request.read()
            await self.gate.wait()
            self.got.append((request.match_info["trigger"], request.headers["ce-id"]))
            return web.Response(status=202)
        finally:
            self.now -= 1


def _text(url: str) -> str:
    triggers = [
        trigger_doc(
            f"t{i}",
            f"{url}/t{i}",
            filters=[{"exact": {"type": f"fan.{i}"}}],
            delivery={"maxInFlight": 10, "timeout": "PT5S"},
        )
        for i in range(TRIGGERS)
    ]
    return manifests(broker_doc(), *triggers)


def _batch(prefix: str, count: int) -> bytes:
    """``count`` events spread over the triggers, one after the other."""
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "id": f"{prefix}{n}",
                "source": "/t",
                "type": f"fan.{n % TRIGGERS}",
            }
            for n in range(count)
        ]
    ).encode()


def _expected(prefix: str, count: int) -> list[tuple[str, str]]:
    return sorted((f"t{n % TRIGGERS}", f"{prefix}{n}") for n in range(count))


async def fill_the_host(running: Running, subscriber: Subscriber, prefix: str, count: int) -> None:
    """Warm the keep-alive connections (the fast path sends on idle ones only) with one
    event per trigger, then hold the subscriber's answers and post ``count`` more
    (named ``prefix``): return once HOST_LIMIT of them are on the wire."""
    running.system.pool.slots.limit = HOST_LIMIT
    await post_batch(running, _batch("w", TRIGGERS))
    await wait_until(lambda: len(subscriber.got) == TRIGGERS, 30, "the first ones")
    subscriber.gate.clear()  # hold the next HOST_LIMIT; the rest wait their turn
    await post_batch(running, _batch(prefix, count))
    await wait_until(lambda: subscriber.now == HOST_LIMIT, 30, "the host limit")


async def test_triggers_share_the_host_limit_and_deliver_every_event_once(
    tmp_path: Path,
) -> None:
    subscriber = Subscriber()
    runner, url = await serve("/{trigger}", subscriber.handle)
    try:
        async with run_system(tmp_path, _text(url)) as running:
            await fill_the_host(running, subscriber, "e", TRIGGERS * PER_TRIGGER)
            dispatchers = [t.dispatcher for t in running.system.triggers.values()]
            await wait_until(
                lambda: (
                    sum(len(d._parked) for d in dispatchers) == TRIGGERS * PER_TRIGGER - HOST_LIMIT
                ),
                30,
                "the rest parked",
            )
            assert not any(d._tasks for d in dispatchers)  # no task waits for a connection
            subscriber.gate.set()
            total = TRIGGERS * (PER_TRIGGER + 1)
            await wait_until(lambda: len(subscriber.got) >= total, 60, "every one")
    finally:
        await runner.cleanup()
    assert sorted(subscriber.got) == sorted(
        _expected("w", TRIGGERS) + _expected("e", TRIGGERS * PER_TRIGGER)
    )
    assert subscriber.most <= HOST_LIMIT


async def test_events_waiting_for_the_host_stay_pending_at_stop(tmp_path: Path) -> None:
    subscriber = Subscriber()
    runner, url = await serve("/{trigger}", subscriber.handle)
    text = _text(url)
    try:
        async with run_system(tmp_path, text, drain_timeout=0.5) as running:
            await fill_the_host(running, subscriber, "e", TRIGGERS * 3)
        subscriber.gate.set()
        async with run_system(tmp_path, text) as running:
            await wait_until(
                lambda: set(subscriber.got) >= set(_expected("e", TRIGGERS * 3)), 60, "the rest"
            )
    finally:
        await runner.cleanup()


async def test_a_full_host_queues_new_events_for_a_turn_and_is_forgotten_once_free(
    tmp_path: Path,
) -> None:
    """While the host stays full, an event new to a trigger that found it full parks
    at once (queued for the trigger's turn there, holding no slot of its own limit);
    once the host has room again, the trigger's next event goes straight out."""
    subscriber = Subscriber()
    runner, url = await serve("/{trigger}", subscriber.handle)
    try:
        async with run_system(tmp_path, _text(url)) as running:
            running.system.pool.slots.limit = HOST_LIMIT
            await post_batch(running, _batch("w", TRIGGERS))
            await wait_until(lambda: len(subscriber.got) == TRIGGERS, 30, "the first ones")
            dispatchers = [t.dispatcher for t in running.system.triggers.values()]
            assert not any(d._crowded for d in dispatchers)
            subscriber.gate.clear()
            await post_batch(running, _batch("e", TRIGGERS * 2))
            await wait_until(lambda: subscriber.now == HOST_LIMIT, 30, "the host limit")
            parked = TRIGGERS * 2 - HOST_LIMIT
            await wait_until(
                lambda: sum(len(d._parked) for d in dispatchers) == parked, 30, "parked"
            )
            assert sum(bool(d._crowded) for d in dispatchers) >= TRIGGERS - HOST_LIMIT
            await post_batch(running, _batch("f", TRIGGERS))
            await wait_until(
                lambda: sum(len(d._parked) for d in dispatchers) == parked + TRIGGERS,
                30,
                "the new ones parked",
            )
            assert sum(d.limit.in_use for d in dispatchers) == HOST_LIMIT
            subscriber.gate.set()
            total = TRIGGERS * 4
            await wait_until(lambda: len(subscriber.got) == total, 60, "every one")
            # As many as the host takes at once: none finds it full.
            await post_batch(running, _batch("g", HOST_LIMIT))
            await wait_until(lambda: len(subscriber.got) == total + HOST_LIMIT, 30, "the last")
            again = [d for d in dispatchers if d.stats.delivered == 5]
            assert len(again) == HOST_LIMIT
            assert not any(d._crowded for d in again)
    finally:
        await runner.cleanup()
    assert sorted(subscriber.got) == sorted(
        _expected("w", TRIGGERS)
        + _expected("e", TRIGGERS * 2)
        + _expected("f", TRIGGERS)
        + _expected("g", HOST_LIMIT)
    )
    assert subscriber.most <= HOST_LIMIT
