"""A batch larger than a trigger's ``maxInFlight``: the events beyond the limit wait
(parked, no task each) and go by the fast path as attempts finish. Every event is
delivered once, never more than ``maxInFlight`` at a time; stopping with events
parked leaves them pending, and the next run delivers them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

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

LIMIT = 3
EVENTS = 200


class Subscriber:
    """Counts each id, the most requests at once; may hold answers until released."""

    def __init__(self) -> None:
        self.ids: list[str] = []
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
            self.ids.append(request.headers["ce-id"])
            return web.Response(status=202)
        finally:
            self.now -= 1


def _batch(first: int, count: int) -> bytes:
    return json.dumps(
        [
            {"specversion": "1.0", "id": f"e{n}", "source": "/t", "type": "t"}
            for n in range(first, first + count)
        ]
    ).encode()


async def test_a_batch_beyond_max_in_flight_is_delivered_once_within_the_limit(
    tmp_path: Path,
) -> None:
    subscriber = Subscriber()
    runner, base = await serve("/", subscriber.handle)
    url = f"{base}/"
    text = manifests(broker_doc(), trigger_doc("t", url, delivery={"maxInFlight": LIMIT}))
    try:
        async with run_system(tmp_path, text) as running:
            await post_batch(running, _batch(EVENTS, LIMIT))  # keep-alive connections
            await wait_until(lambda: len(subscriber.ids) == LIMIT, 30, "the first ones")
            await post_batch(running, _batch(0, EVENTS))
            await wait_until(lambda: len(subscriber.ids) >= EVENTS + LIMIT, 60, "every one")
    finally:
        await runner.cleanup()
    assert sorted(subscriber.ids) == sorted(f"e{n}" for n in range(EVENTS + LIMIT))
    assert subscriber.most <= LIMIT


async def test_parked_events_stay_pending_at_stop_and_are_delivered_after(
    tmp_path: Path,
) -> None:
    subscriber = Subscriber()
    runner, base = await serve("/", subscriber.handle)
    url = f"{base}/"
    text = manifests(
        broker_doc(), trigger_doc("t", url, delivery={"maxInFlight": LIMIT, "timeout": "PT1S"})
    )
    try:
        async with run_system(tmp_path, text, drain_timeout=0.5) as running:
            # Keep-alive connections first (the fast path sends on idle ones only).
            await post_batch(running, _batch(100, LIMIT))
            await wait_until(lambda: len(subscriber.ids) == LIMIT, 30, "the first ones")
            subscriber.gate.clear()  # hold the next LIMIT; the rest park behind them
            await post_batch(running, _batch(0, 50))
            await wait_until(lambda: subscriber.now == LIMIT, 30, "the limit reached")
            (trigger,) = running.system.triggers.values()
            assert trigger.dispatcher._parked
        subscriber.gate.set()
        async with run_system(tmp_path, text) as running:
            await wait_until(
                lambda: set(subscriber.ids) >= {f"e{n}" for n in range(50)}, 60, "the rest"
            )
    finally:
        await runner.cleanup()
