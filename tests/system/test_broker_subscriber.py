"""A Trigger whose subscriber is a Broker (Knative allows it; ``validate`` accepts it, so
``run`` must deliver it): events pass into the second broker with one hop of their TTL
spent, and that broker's triggers deliver them."""

from __future__ import annotations

import aiohttp

from tests.conftest import SystemFactory
from tests.support.mesh import broker_doc, broker_url, manifests, send, trigger_doc
from tests.support.subscriber import RecordingSubscriber


async def test_trigger_delivers_into_another_broker(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    forward = trigger_doc("forward", "log:")
    forward["spec"]["subscriber"] = {"ref": {"kind": "Broker", "name": "second"}}
    running = await system(
        manifests(
            broker_doc(),
            broker_doc("second"),
            forward,
            trigger_doc("final", f"{subscriber.url}/final", broker="second"),
        )
    )
    async with aiohttp.ClientSession() as http:
        for i in range(3):
            await send(http, running, f"e{i}")
    events = await subscriber.wait_count(3, "/final")
    assert sorted(e.id for e in events) == ["e0", "e1", "e2"]
    assert {e.attributes.get("knativebrokerttl") for e in events} == {"254"}
    assert running.system.triggers["default/forward"].sink.target == "broker:default/second"
    assert broker_url(running, "second").endswith("/default/second")
