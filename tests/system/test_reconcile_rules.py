"""The reconciler's rules for Brokers and sources, applied live from a watched directory
(docs/operating.md, Live reload): a Broker added serves its ingress; a Broker deleted
while a Trigger that stays still uses it is refused (kept, with a note); a webhook
source added answers on its path and stops answering once deleted; a file that stops
loading keeps its last good version running, with validate's message."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
from aiohttp import web

from eventing.app.runtime import Running
from tests.conftest import SystemFactory
from tests.support.mesh import broker_doc, ce_headers, manifests, post, trigger_doc, wait_until
from tests.support.subscriber import RecordingSubscriber

HOOK = """apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: hook}
spec:
  path: /hooks/default/live
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: second}}
"""


def save(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def applied(running: Running, before: int) -> None:
    await wait_until(
        lambda: running.reconciler is not None and running.reconciler.applied > before,
        what="the change applied",
    )


def count(running: Running) -> int:
    assert running.reconciler is not None
    return running.reconciler.applied


async def test_brokers_and_sources_come_and_go(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    running = await system(manifests(broker_doc()), watch=True)
    directory = tmp_path / "manifests0"
    trigger = manifests(trigger_doc("on-second", f"{subscriber.url}/second", broker="second"))
    async with aiohttp.ClientSession() as http:
        # A Broker and its Trigger added: its ingress answers, events flow.
        save(directory / "b2.yaml", manifests(broker_doc("second")))
        save(directory / "t2.yaml", trigger)
        await wait_until(lambda: "default/on-second" in running.system.triggers)
        status, body = await post(http, f"{running.ingress_url}/default/second", ce_headers("s1"))
        assert status == 202, body
        await subscriber.wait_for(lambda rs: "s1" in subscriber.ids("/second"))

        # A webhook source added: it answers on its path; deleted: it does not.
        before = count(running)
        save(directory / "hook.yaml", HOOK)
        await applied(running, before)
        async with http.post(f"{running.ingress_url}/hooks/default/live", json={"a": 1}) as r:
            assert r.status in (200, 202), await r.text()
        await subscriber.wait_count(2, "/second")
        before = count(running)
        (directory / "hook.yaml").unlink()
        await applied(running, before)
        async with http.post(f"{running.ingress_url}/hooks/default/live", json={"a": 1}) as r:
            assert r.status == 404

        # The Broker's file broken: validate's message; the last good version runs.
        before = count(running)
        save(directory / "b2.yaml", manifests(broker_doc("second")).replace("Broker", "Brokr"))
        await applied(running, before)
        assert running.reconciler is not None
        state = running.reconciler.status()
        rejected = {r["unit"]: r["messages"] for r in state["rejected"]}
        # The Trigger's file fails in turn (its Broker is not loaded): both keep running.
        assert set(rejected) == {str(directory / "b2.yaml"), str(directory / "t2.yaml")}
        assert "unknown kind" in rejected[str(directory / "b2.yaml")][0]
        status, body = await post(http, f"{running.ingress_url}/default/second", ce_headers("s2"))
        assert status == 202, body
        await subscriber.wait_for(lambda rs: "s2" in subscriber.ids("/second"))

        # The Broker deleted while its Trigger stays: refused (kept, with a note).
        before = count(running)
        (directory / "b2.yaml").unlink()
        await applied(running, before)
        state = running.reconciler.status()
        assert "default/second" in running.system.brokers
        assert any("still use it" in n["message"] for n in state["notes"]), state

        # Both gone: the Trigger first, then the Broker; its ingress path answers 404.
        before = count(running)
        (directory / "t2.yaml").unlink()
        await applied(running, before)
        assert "default/second" not in running.system.brokers
        assert "default/on-second" not in running.system.triggers
        status, _ = await post(http, f"{running.ingress_url}/default/second", ce_headers("s3"))
        assert status == 404


async def test_a_deleted_trigger_lets_its_delivery_on_the_wire_finish(
    system: SystemFactory, tmp_path: Path
) -> None:
    """Deleting a trigger waits (up to the drain deadline) for the attempt in flight:
    the subscriber's answer is taken and the event acked, not cut off."""
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await request.read()
        arrived.set()
        await answer.wait()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/held", held)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/held"
    try:
        running = await system(
            manifests(broker_doc(), trigger_doc("held", url)), watch=True, drain_timeout=20.0
        )
        runtime = running.system.triggers["default/held"]
        async with aiohttp.ClientSession() as http:
            status, body = await post(http, f"{running.ingress_url}/default/default", ce_headers())
            assert status == 202, body
        await asyncio.wait_for(arrived.wait(), 20)
        before = count(running)
        save(tmp_path / "manifests0" / "system.yaml", manifests(broker_doc()))
        await wait_until(lambda: "default/held" not in running.system.triggers)
        assert count(running) == before  # still draining the attempt on the wire
        answer.set()
        await applied(running, before)
        assert runtime.dispatcher.stats.delivered == 1
    finally:
        answer.set()
        await runner.cleanup()
