"""Deduplication through a real ``eventing run`` (subprocess, loopback HTTP): the same
signed GitHub delivery posted twice is stored and delivered once and counted as a
``duplicate`` drop; the same body under another delivery id is not deduplicated; and
after ``kill -9`` and a restart the embedded class still remembers the delivery."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TESTDATA
from tests.integration.support import eventually_async
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

pytestmark = pytest.mark.e2e

SECRET = "dedup-e2e-secret"
BODY = (TESTDATA / "github-webhooks" / "push" / "payload.json").read_bytes()


def manifests(tmp_path: Path, url: str) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {{name: repo}}
spec:
  ownerAndRepository: Codertocat/Hello-World
  eventTypes: [push]
  secretToken: {{secretKeyRef: {{name: ghdedup, key: secret}}}}
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: github}}
spec:
  broker: default
  subscriber: {{uri: "{url}/github"}}
""")
    return directory


async def post_delivery(http: aiohttp.ClientSession, proc: EventingProcess, delivery: str) -> int:
    base = proc.url().rsplit("/", 2)[0]
    signature = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    async with http.post(f"{base}/webhooks/default/repo", data=BODY, headers=headers) as r:
        return r.status


async def duplicates(http: aiohttp.ClientSession, proc: EventingProcess) -> tuple[int, float]:
    """The broker's ``*:duplicate`` drops in ``/v1/status`` and in ``/metrics``."""
    async with http.get(f"{proc.admin_url}/v1/status") as r:
        status = await r.json()
    (broker,) = status["brokers"]
    async with http.get(f"{proc.admin_url}/metrics") as r:
        text = await r.text()
    line = re.search(
        r'eventing_filter_drops_total\{broker="default/default",reason="duplicate",'
        r'trigger=""\} ([0-9.e+]+)|eventing_filter_drops_total\{broker="default/default",'
        r'trigger="",reason="duplicate"\} ([0-9.e+]+)',
        text,
    )
    metric = 0.0 if line is None else float(line.group(1) or line.group(2))
    return int(broker["dropped"].get("*:duplicate", 0)), metric


async def backlog(http: aiohttp.ClientSession, proc: EventingProcess) -> bool:
    async with http.get(f"{proc.admin_url}/v1/status") as r:
        status = await r.json()
    return all(t["backlog"] == 0 for t in status["triggers"])


async def test_a_github_delivery_posted_twice_is_delivered_once_even_after_kill_9(
    tmp_path: Path, subscriber: RecordingSubscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTING_SECRET_GHDEDUP_SECRET", SECRET)
    proc = EventingProcess(manifests(tmp_path, subscriber.url), tmp_path / "data")
    await proc.start()
    try:
        async with aiohttp.ClientSession() as http:
            first = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
            assert await post_delivery(http, proc, first) == 202
            assert await post_delivery(http, proc, first) == 202  # GitHub must not retry
            assert await post_delivery(http, proc, "other-delivery-same-body") == 202
            await subscriber.wait_count(2, path="/github")
            assert await duplicates(http, proc) == (1, 1.0)
            # Acks committed first, so the restart redelivers nothing on its own
            # (at-least-once would) and any second copy could only be a dedup miss.
            await eventually_async(lambda: backlog(http, proc), what="backlog empty")

            await proc.kill()  # kill -9: the key must be on disk with the event
            await proc.start()
            assert await post_delivery(http, proc, first) == 202
            assert await post_delivery(http, proc, "after-the-restart") == 202
            await subscriber.wait_count(3, path="/github")
            assert await duplicates(http, proc) == (1, 1.0)
        ids = [e.id for e in subscriber.events("/github")]
        assert sorted(ids) == sorted([first, "other-delivery-same-body", "after-the-restart"])
    finally:
        if proc.proc is not None and proc.proc.returncode is None:
            assert await proc.terminate(60) == 0, "\n".join(proc.output[-30:])
