"""https deliveries waiting for a connection give up at the start of a drain, as
plain http ones do: they hold a slot of the delivery pool's per-host limit (aiohttp's
connector, which brings TLS, has no queue of its own to stop), so the pool's
``stop_queueing`` ends their wait at once and they stay pending; only those on the
wire wait for the deadline. Real TLS over loopback (a CA and a server certificate
made for the test)."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

from aiohttp import web

from eventing.app.system import StoreSettings
from eventing.tls import ClientTls
from tests.support.mesh import (
    broker_doc,
    manifests,
    post_batch,
    run_system,
    trigger_doc,
    wait_until,
)
from tests.system.test_tls import _pair

HOST_LIMIT = 2
EVENTS = 12


class HungSubscriber:
    """Holds every request until ``gate`` opens; records the ids it answered."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.holding = 0
        self.ids: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.holding += 1
        try:
            await request.read()
            await self.gate.wait()
            self.ids.append(request.headers["ce-id"])
            return web.Response(status=202)
        finally:
            self.holding -= 1


def _batch(count: int) -> str:
    return json.dumps(
        [{"specversion": "1.0", "id": f"e{n}", "source": "/t", "type": "t"} for n in range(count)]
    )


async def test_waiting_https_deliveries_give_up_at_the_start_of_the_drain(
    tmp_path: Path,
) -> None:
    ca = _pair(tmp_path, "ca")
    cert, key, _, _ = _pair(tmp_path, "subscriber", (ca[2], ca[3]))
    subscriber = HungSubscriber()
    app = web.Application()
    app.router.add_post("/sub", subscriber.handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    text = manifests(
        broker_doc(),
        trigger_doc("tls", f"https://127.0.0.1:{port}/sub", delivery={"timeout": "PT60S"}),
    )
    store = StoreSettings(data_dir=tmp_path / "data", delivery_tls=ClientTls(ca[0]))
    try:
        async with run_system(tmp_path, text, store=store, drain_timeout=0.5) as running:
            running.system.pool.slots.limit = HOST_LIMIT
            await post_batch(running, _batch(EVENTS))
            (trigger,) = running.system.triggers.values()
            dispatcher = trigger.dispatcher
            await wait_until(lambda: subscriber.holding == HOST_LIMIT, 30, "the host limit")
            await wait_until(lambda: len(dispatcher._tasks) == EVENTS, 30, "all taken")
            # What runtime.stop does first: stop taking, stop the pool's queue.
            dispatcher.stop_taking()
            running.system.pool.stop_queueing()
            await wait_until(
                lambda: len(dispatcher._tasks) == HOST_LIMIT, 30, "the waiting ones ended"
            )
            assert subscriber.holding == HOST_LIMIT  # those on the wire go on
        subscriber.gate.set()
        async with run_system(tmp_path, text, store=store):
            await wait_until(
                lambda: set(subscriber.ids) >= {f"e{n}" for n in range(EVENTS)},
                60,
                "every event after the restart",
            )
    finally:
        subscriber.gate.set()
        await runner.cleanup()
