"""examples/flows runs as its comment says: a push to main goes through the build and
test Workloads (started on demand) and comes back to the broker; a push elsewhere is
filtered out on its data."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import yaml

from tests.conftest import SystemFactory
from tests.support.subscriber import RecordingSubscriber

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flows" / "pipeline.yaml"


async def test_the_pipeline_example(system: SystemFactory, subscriber: RecordingSubscriber) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for doc in docs:
        if doc["kind"] == "Trigger" and doc["metadata"]["name"] == "notify":
            doc["spec"]["subscriber"] = {"uri": f"{subscriber.url}/notify"}
    running = await system(yaml.safe_dump_all(docs, sort_keys=False))
    async with aiohttp.ClientSession() as http:
        for event_id, body in (
            ("p1", b'{"ref": "main", "files": 12}'),
            ("p2", b'{"ref": "dev", "files": 3}'),
        ):
            headers = {
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": "/git",
                "ce-type": "dev.example.push",
                "Content-Type": "application/json",
            }
            async with http.post(
                f"{running.ingress_url}/default/default", data=body, headers=headers
            ) as r:
                assert r.status == 202
    [done] = await subscriber.wait_count(1, "/notify", timeout=60)
    assert done.id == "p1-build-test"
    assert done.data == b'{"ref": "main", "files": 12, "build": "ok", "test": "ok"}'
    drops = running.system.brokers["default/default"].drops()
    assert drops[("default/push-to-ci", "filtered")] >= 1  # p2 (and the replies)
