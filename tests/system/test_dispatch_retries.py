"""The dispatcher's one delivery path: a retry waits on a loop timer, not in a task,
so hundreds of events waiting for their retry cost no task each; a stop drops the
waiting retries at once and leaves their events pending for the next run; ordered
keys keep their order through retries and dead letters in the middle of a key.

The subscriber of the first test answers from a loop of its own thread, so the
tasks of its connections are not counted among the tasks of the dispatcher's loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path

from aiohttp import web

from tests.support.mesh import (
    broker_doc,
    manifests,
    post_batch,
    run_system,
    serve,
    settled,
    trigger_doc,
    trigger_key,
    wait_until,
)

LIMIT = 20
EVENTS = 500
SPARE_TASKS = 10
"""Tasks beyond those of the idle system allowed while every event waits for its
retry (the run loop, a reply or dead letter being sent, ...): a constant, not one
per event."""


def _batch(ids: list[str], **extensions: str) -> str:
    return json.dumps(
        [{"specversion": "1.0", "id": i, "source": "/t", "type": "t", **extensions} for i in ids]
    )


class ThreadedSubscriber:
    """Fails the first attempt of every event whose id starts with ``fail_prefix``
    with 503 and ``Retry-After: 1``, answers 202 otherwise; counts attempts and
    deliveries per id. Runs its own event loop in a thread."""

    def __init__(self, fail_prefix: str) -> None:
        self.fail_prefix = fail_prefix
        self.attempts: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            return Counter(self.attempts), Counter(self.delivered)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        id_ = request.headers.get("ce-id", "")
        with self._lock:
            self.attempts[id_] += 1
            first = self.attempts[id_] == 1
            if first and id_.startswith(self.fail_prefix):
                return web.Response(status=503, headers={"Retry-After": "1"})
            self.delivered[id_] += 1
        return web.Response(status=202)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/"

    async def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.url = await asyncio.wrap_future(future)

    async def stop(self) -> None:
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            await asyncio.wrap_future(future)
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10)
        self._loop.close()


async def test_events_waiting_for_their_retry_hold_no_task_each(tmp_path: Path) -> None:
    subscriber = ThreadedSubscriber(fail_prefix="e")
    await subscriber.start()
    delivery = {"maxInFlight": LIMIT, "retry": 3, "backoffDelay": "PT0.01S", "timeout": "PT30S"}
    text = manifests(broker_doc(), trigger_doc("t", subscriber.url, delivery=delivery))
    try:
        async with run_system(tmp_path, text) as running:
            # Keep-alive connections first (try_send sends on idle ones only).
            warm = [f"w{n}" for n in range(LIMIT)]
            await post_batch(running, _batch(warm))
            await wait_until(
                lambda: sum(subscriber.snapshot()[1].values()) == LIMIT, 30, "the warm-up"
            )
            await settled(running)
            idle_tasks = len(asyncio.all_tasks())
            stats = running.system.triggers[trigger_key("t")].dispatcher.stats
            ids = [f"e{n}" for n in range(EVENTS)]
            await post_batch(running, _batch(ids))
            most = 0

            def retried_all() -> bool:
                nonlocal most
                most = max(most, len(asyncio.all_tasks()))
                return stats.retried == EVENTS

            await wait_until(retried_all, 60, "every event failed once")
            await wait_until(
                lambda: sum(subscriber.snapshot()[1].values()) == LIMIT + EVENTS,
                60,
                "every event delivered after its retry",
            )
            await settled(running)
            assert stats.delivered == LIMIT + EVENTS
    finally:
        await subscriber.stop()
    attempts, delivered = subscriber.snapshot()
    assert all(delivered[i] == 1 and attempts[i] == 2 for i in ids), (attempts, delivered)
    assert most <= idle_tasks + SPARE_TASKS, (most, idle_tasks)


async def test_a_stop_leaves_waiting_retries_pending_and_the_next_run_delivers_them(
    tmp_path: Path,
) -> None:
    failing = True
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if failing:  # a Retry-After far beyond the drain: the retries wait on timers
            return web.Response(status=503, headers={"Retry-After": "3600"})
        got.append(request.headers["ce-id"])
        return web.Response(status=202)

    runner, base = await serve("/", handle)
    delivery = {"retry": 5, "backoffDelay": "PT0.01S"}
    text = manifests(broker_doc(), trigger_doc("t", f"{base}/", delivery=delivery))
    ids = [f"e{n}" for n in range(50)]
    try:
        async with run_system(tmp_path, text, drain_timeout=60.0) as running:
            await post_batch(running, _batch(ids))
            dispatcher = running.system.triggers[trigger_key("t")].dispatcher
            await wait_until(lambda: dispatcher.stats.retried == len(ids), 30, "all waiting")
            await wait_until(lambda: not dispatcher._tasks, 30, "no task")  # timers only
            assert dispatcher.stats.delivered == 0
        # The stop returned without waiting for the retries (an hour) or the drain.
        assert dispatcher.stats.delivered == 0
        assert dispatcher.stats.dead_lettered == 0
        failing = False
        async with run_system(tmp_path, text) as running:
            await wait_until(lambda: set(got) >= set(ids), 60, "every event after the restart")
            await settled(running)
    finally:
        await runner.cleanup()
    assert sorted(got) == sorted(ids)  # each once


async def test_ordered_keys_keep_their_order_through_retries_and_dead_letters(
    tmp_path: Path,
) -> None:
    """Key ``a`` fails in the middle until the test lets it through: its later events
    wait while key ``b`` (with a non-retryable 400 in its middle: dead-lettered, and
    the key goes on) and key ``c`` are delivered; then ``a`` finishes in order."""
    hold_a = asyncio.Event()
    attempts: list[str] = []
    delivered: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        id_ = request.headers["ce-id"]
        attempts.append(id_)
        if id_ == "a-3" and not hold_a.is_set():
            return web.Response(status=500)
        if id_ == "b-4":
            return web.Response(status=400)
        if id_ == "c-2" and attempts.count(id_) == 1:
            return web.Response(status=503, headers={"Retry-After": "0"})
        delivered.append(id_)
        return web.Response(status=202)

    runner, base = await serve("/", handle)
    delivery = {
        "retry": 1000,
        "backoffDelay": "PT0.02S",
        "backoffPolicy": "linear",
        "jitter": 0,
        "ordering": "ordered",
        "deadLetterSink": {"uri": "dlq:"},
    }
    text = manifests(broker_doc(), trigger_doc("t", f"{base}/", delivery=delivery))
    keys = ("a", "b", "c")
    sent = {key: [f"{key}-{n}" for n in range(8)] for key in keys}
    try:
        async with run_system(tmp_path, text) as running:
            for n in range(8):  # interleaved: a-0, b-0, c-0, a-1, ...
                events = [
                    {
                        "specversion": "1.0",
                        "id": sent[k][n],
                        "source": "/t",
                        "type": "t",
                        "partitionkey": k,
                    }
                    for k in keys
                ]
                await post_batch(running, json.dumps(events))
            others = {*sent["b"], *sent["c"]} - {"b-4"}
            await wait_until(lambda: set(delivered) >= others, 60, "keys b and c")
            await wait_until(lambda: attempts.count("a-3") >= 3, 60, "a-3 retried")
            assert not set(delivered) & set(sent["a"][3:])  # a waits behind a-3
            hold_a.set()
            await wait_until(lambda: set(delivered) >= set(sent["a"]), 60, "key a")
            await settled(running)
            stats = running.system.triggers[trigger_key("t")].dispatcher.stats
            assert stats.dead_lettered == 1
    finally:
        await runner.cleanup()
    for key in keys:
        mine = [i for i in delivered if i.startswith(f"{key}-")]
        assert mine == [i for i in sent[key] if i != "b-4"], (key, delivered)
        tried = [i for i in attempts if i.startswith(f"{key}-")]
        assert list(dict.fromkeys(tried)) == sent[key], (key, attempts)  # none overtook
    assert attempts.count("b-4") == 1  # not retried: straight to the dead letters
