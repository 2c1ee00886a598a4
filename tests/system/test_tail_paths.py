"""``tail`` sees every way an event enters a broker: the ingress, a source (a webhook
here) and a subscriber's reply, each with the triggers it matched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from eventing.events import Event
from tests.conftest import SystemFactory
from tests.support.subscriber import Answer, Received, RecordingSubscriber


def manifests(url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {{name: hook}}
spec:
  path: /hooks/default/hook
  event: {{type: com.example.hooked}}
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: asks}}
spec:
  broker: default
  filters: [{{exact: {{type: com.example.ask}}}}]
  subscriber: {{uri: "{url}/asks"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: answers}}
spec:
  broker: default
  filters: [{{exact: {{type: com.example.answer}}}}]
  subscriber: {{uri: "{url}/answers"}}
"""


def reply(received: Received, n: int) -> Answer:
    if received.path != "/asks":
        return Answer(202)
    answer = Event(
        {"specversion": "1.0", "id": "answer-1", "source": "/sub", "type": "com.example.answer"},
        b"{}",
    )
    return Answer(200, reply=answer)


async def test_tail_sees_ingress_sources_and_replies(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    subscriber.responder = reply
    running = await system(manifests(subscriber.url))
    records: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.get(running.admin_url + "/v1/tail") as stream,
    ):
        headers = {
            "ce-specversion": "1.0",
            "ce-id": "ask-1",
            "ce-source": "/t",
            "ce-type": "com.example.ask",
        }
        async with http.post(
            running.ingress_url + "/default/default", headers=headers, data=b"{}"
        ) as r:
            assert r.status == 202
        async with http.post(
            running.ingress_url + "/hooks/default/hook",
            data=b'{"a": 1}',
            headers={"Content-Type": "application/json"},
        ) as r:
            assert r.status < 300
        async with asyncio.timeout(30):
            while len(records) < 3:
                line = json.loads(await stream.content.readline())
                if "event" in line:
                    records.append(line)
    by_type = {r["event"]["type"]: r for r in records}
    assert set(by_type) == {"com.example.ask", "com.example.hooked", "com.example.answer"}
    assert [m["trigger"] for m in by_type["com.example.ask"]["matched"]] == ["default/asks"]
    assert [m["trigger"] for m in by_type["com.example.answer"]["matched"]] == ["default/answers"]
    assert by_type["com.example.hooked"]["matched"] == []
    assert {m["trigger"] for m in by_type["com.example.hooked"]["notMatched"]} == {
        "default/asks",
        "default/answers",
    }
    await subscriber.wait_for(lambda rs: any(r.path == "/answers" for r in rs), timeout=30)
