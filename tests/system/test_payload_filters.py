"""A trigger filtering on the event's JSON data (``data.`` paths in CESQL, our
extension) through the running system: only the matching orders are delivered, and
what the filter could not read is counted as a drop with its reason."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import SystemFactory
from tests.support.subscriber import RecordingSubscriber


async def test_orders_filtered_on_their_total(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: big-orders}}
spec:
  broker: default
  filters:
    - exact: {{type: order.created}}
    - cesql: "data.order.total > 100 AND data.order.currency = 'EUR'"
  subscriber: {{uri: "{subscriber.url}/big"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: all-orders}}
spec:
  broker: default
  filters: [{{exact: {{type: order.created}}}}]
  subscriber: {{uri: "{subscriber.url}/all"}}
""")
    bodies = [
        ("o1", {"order": {"total": 250, "currency": "EUR"}}, "application/json"),
        ("o2", {"order": {"total": 50, "currency": "EUR"}}, "application/json"),
        ("o3", {"order": {"total": 900, "currency": "USD"}}, "application/json"),
        ("o4", {"order": {"total": 300, "currency": "EUR"}}, "text/plain"),
        ("o5", {"order": {"currency": "EUR"}}, "application/json"),
    ]
    async with aiohttp.ClientSession() as http:
        for event_id, body, content_type in bodies:
            headers = {
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": "/shop",
                "ce-type": "order.created",
                "Content-Type": content_type,
            }
            async with http.post(
                f"{running.ingress_url}/default/default",
                data=json.dumps(body).encode(),
                headers=headers,
            ) as r:
                assert r.status == 202, await r.text()
    await subscriber.wait_count(5, "/all")
    await subscriber.wait_count(1, "/big")
    assert subscriber.ids("/big") == ["o1"]
    drops = running.system.brokers["default/default"].drops()
    assert drops[("default/big-orders", "filtered")] == 2  # o2, o3
    assert drops[("default/big-orders", "cesql:missingAttribute")] == 2  # o4 text, o5 no total
