"""Events flow from ingress through a trigger to a real subscriber over loopback."""

from __future__ import annotations

import aiohttp

from tests.conftest import SystemFactory
from tests.support.subscriber import RecordingSubscriber


def manifests(url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: orders}}
spec:
  broker: default
  filters: [{{exact: {{type: order.created}}}}]
  subscriber: {{uri: "{url}/orders"}}
"""


async def test_binary_event_is_delivered(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(subscriber.url))
    async with aiohttp.ClientSession() as http:
        for i, type_ in enumerate(["order.created", "order.deleted", "order.created"]):
            async with http.post(
                f"{running.ingress_url}/default/default",
                data=b'{"n": 1}',
                headers={
                    "ce-specversion": "1.0",
                    "ce-id": f"e{i}",
                    "ce-source": "/test",
                    "ce-type": type_,
                    "Content-Type": "application/json",
                },
            ) as r:
                assert r.status == 202, await r.text()
    events = await subscriber.wait_count(2)
    assert sorted(e.id for e in events) == ["e0", "e2"]
    assert events[0].data == b'{"n": 1}'
    assert events[0].attributes["knativebrokerttl"] == "255"
