"""``eventing tail`` and duplicates: an event the broker answered as accepted but did
not store, because its (source, id) was stored before, is shown marked as a duplicate
with no trigger (in text and ``--json``), not as if it had been stored and routed."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp

from eventing.app.runtime import Running
from tests.conftest import SystemFactory
from tests.support.mesh import ce_headers, post
from tests.support.process import reaped
from tests.support.subscriber import RecordingSubscriber

MANIFESTS = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  annotations: {{eventing.local/dedup-ingress: "true"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: all}}
spec:
  broker: default
  subscriber: {{uri: "{url}/all"}}
"""


async def tail_while_posting(running: Running, *flags: str) -> list[str]:
    """Run ``eventing tail --count 3`` as a user does; once it is connected, post
    (a, /one), (a, /one) again (extension ``copy: second``), and (b, /one); its
    standard output, line by line."""
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eventing.app.cli", "tail", "--admin", running.admin_url,
        "--count", "3", *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    async with reaped(tail):
        assert tail.stderr is not None
        async with asyncio.timeout(60):
            assert b"tailing" in await tail.stderr.readline()
        url = f"{running.ingress_url}/default/default"
        async with aiohttp.ClientSession() as http:
            for event_id, copy in (("a", "first"), ("a", "second"), ("b", "first")):
                headers = ce_headers(event_id, source="/one", copy=copy)
                status, _ = await post(http, url, headers, b"{}")
                assert status == 202  # a duplicate is answered as accepted too
        async with asyncio.timeout(60):
            out, _ = await tail.communicate()
    assert tail.returncode == 0
    return out.decode().splitlines()


async def test_tail_json_marks_a_duplicate_and_routes_it_nowhere(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(MANIFESTS.format(url=subscriber.url))
    first, again, other = (json.loads(line) for line in await tail_while_posting(running, "--json"))
    assert (first["event"]["id"], first["duplicate"]) == ("a", False)
    assert [m["trigger"] for m in first["matched"]] == ["default/all"]
    assert (again["event"]["id"], again["duplicate"]) == ("a", True)
    assert again["matched"] == []
    assert again["notMatched"] == []
    assert (other["event"]["id"], other["duplicate"]) == ("b", False)
    assert [m["trigger"] for m in other["matched"]] == ["default/all"]
    await subscriber.wait_count(2)
    assert sorted(e.id for e in subscriber.events()) == ["a", "b"]
    # ``explain --id a`` explains the stored copy, not the duplicate.
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{running.admin_url}/v1/explain", json={"id": "a"}) as r,
    ):
        assert r.status == 200
        explained = await r.json()
    assert explained["event"]["copy"] == "first"


async def test_tail_text_marks_a_duplicate(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(MANIFESTS.format(url=subscriber.url))
    first, again, other = await tail_while_posting(running)
    assert "id=a" in first
    assert "-> default/all" in first
    assert "duplicate" not in first
    assert "id=a" in again
    assert "-> duplicate (source and id stored before; not stored again)" in again
    assert "default/all" not in again
    assert "id=b" in other
    assert "-> default/all" in other
