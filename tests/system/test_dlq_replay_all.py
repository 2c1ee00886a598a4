"""``eventing dlq replay --all`` replays every dead letter, also beyond the admin API's
1000 per call, and stops when what was there at the start is done."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from eventing.app.cli import main
from tests.conftest import SystemFactory
from tests.support.mesh import wait_until
from tests.support.subscriber import Answer, Received, RecordingSubscriber

COUNT = 1005


def manifests(url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: flaky}}
spec:
  broker: default
  subscriber: {{uri: "{url}/flaky"}}
  delivery: {{retry: 0, deadLetterSink: {{uri: "dlq:"}}}}
"""


class Switch:
    def __init__(self) -> None:
        self.healthy = False

    def __call__(self, received: Received, n: int) -> Answer:
        return Answer(202 if self.healthy else 500)


async def test_replay_all_beyond_one_call(
    system: SystemFactory, subscriber: RecordingSubscriber, capsys: pytest.CaptureFixture[str]
) -> None:
    switch = Switch()
    subscriber.responder = switch
    running = await system(manifests(subscriber.url))
    batch = [
        {"specversion": "1.0", "id": f"e{i}", "source": "/t", "type": "t"} for i in range(COUNT)
    ]
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    async with aiohttp.ClientSession() as http:
        for start in (0, 1000):
            body = json.dumps(batch[start : start + 1000])
            async with http.post(
                running.ingress_url + "/default/default", data=body, headers=headers
            ) as r:
                assert r.status == 202
    await subscriber.wait_count(COUNT, "/flaky", timeout=60)

    def depth() -> int:
        return sum(q.depths().get("default/flaky", 0) for q in running.system.dead_letter_queues())

    await wait_until(lambda: depth() == COUNT, timeout=60, what="every dead letter stored")
    switch.healthy = True
    argv = ["dlq", "replay", "--all", "--admin", running.admin_url, "--json"]
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["replayed"]) == COUNT
    assert result["failed"] == []
    await subscriber.wait_count(2 * COUNT, "/flaky", timeout=120)
    assert sorted(set(subscriber.ids("/flaky"))) == sorted(e["id"] for e in batch)
