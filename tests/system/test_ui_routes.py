"""The operator routes on the admin API bound every input and answer every request:
explain's body, tail's filters, the number of live streams, the dashboard's files;
and a tail that never reads does not hold up ingest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from eventing.app.runtime import Running
from eventing.ui.tap import MAX_WATCHERS
from tests.conftest import SystemFactory

MANIFESTS = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: all}
spec:
  broker: default
  subscriber: {uri: "log:"}
"""


@pytest.fixture
async def running(system: SystemFactory) -> Running:
    return await system(MANIFESTS)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def explain(
    http: aiohttp.ClientSession, running: Running, body: bytes
) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"}  # the admin API takes JSON writes only
    async with http.post(running.admin_url + "/v1/explain", data=body, headers=headers) as r:
        return r.status, await r.json()


async def test_explain_refuses_what_it_cannot_answer(
    running: Running, http: aiohttp.ClientSession
) -> None:
    assert (await explain(http, running, b"not json"))[0] == 400
    assert (await explain(http, running, b"[1]"))[0] == 400
    assert (await explain(http, running, b"x" * (64 * 1024 + 1)))[0] == 413
    status, body = await explain(http, running, b'{"attributes": {"type": "t"}, "broker": "x/y"}')
    assert status == 400
    assert "no broker 'x/y'" in str(body["error"])
    assert (await explain(http, running, b'{"attributes": {"type": ["list"]}}'))[0] == 400
    assert (await explain(http, running, b'{"deadLetter": "one"}'))[0] == 400
    assert (await explain(http, running, b'{"deadLetter": 7}'))[0] == 404
    assert (await explain(http, running, b'{"id": "nope"}'))[0] == 404
    many = {f"x{i}": "v" for i in range(201)}
    assert (await explain(http, running, json.dumps({"attributes": many}).encode()))[0] == 400
    status, body = await explain(
        http,
        running,
        b'{"attributes": {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}}',
    )
    assert status == 200
    assert body["deliveredTo"] == [{"trigger": "default/all", "subscriber": "log:"}]


@pytest.mark.parametrize(
    "query",
    ["cesql=type%20%3D", "attr=noequals", "broker=no/such", "cesql=" + "x" * 5000],
)
async def test_tail_refuses_a_bad_filter(
    running: Running, http: aiohttp.ClientSession, query: str
) -> None:
    async with http.get(running.admin_url + "/v1/tail?" + query) as r:
        assert r.status == 400


async def test_at_most_so_many_tails_and_ingest_never_waits_for_them(
    running: Running, http: aiohttp.ClientSession
) -> None:
    streams = [await http.get(running.admin_url + "/v1/tail") for _ in range(MAX_WATCHERS)]
    try:
        async with http.get(running.admin_url + "/v1/tail") as r:
            assert r.status == 429
        # None of the open tails reads: ingest goes on, every event is stored.
        url = running.ingress_url + "/default/default"
        for n in range(300):
            headers = {"ce-specversion": "1.0", "ce-id": f"{n}", "ce-source": "/s", "ce-type": "t"}
            async with http.post(url, headers=headers, data=b"{}") as posted:
                assert posted.status == 202
        line = await asyncio.wait_for(streams[0].content.readline(), 30)
        assert json.loads(line)["event"]["id"] == "0"
    finally:
        for stream in streams:
            stream.close()


async def test_sse_tail_and_dashboard_files(running: Running, http: aiohttp.ClientSession) -> None:
    async with http.get(
        running.admin_url + "/v1/tail?attr=type=t", headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        headers = {"ce-specversion": "1.0", "ce-id": "s1", "ce-source": "/s", "ce-type": "t"}
        async with http.post(running.ingress_url + "/default/default", headers=headers) as r:
            assert r.status == 202
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not lines or not lines[-1].startswith("data: "):
                lines.append((await stream.content.readline()).decode().strip())
        assert "event: event" in lines
        assert json.loads(lines[-1].removeprefix("data: "))["event"]["id"] == "s1"
    async with http.get(running.admin_url + "/ui") as r:
        assert r.status == 200
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "/ui/app.js" in await r.text()
    async with http.get(running.admin_url + "/ui/app.js") as r:
        assert r.headers["Content-Type"].startswith("text/javascript")
    for name in ("missing.js", "..%2Fadmin.py", "index.html.bak"):
        async with http.get(running.admin_url + "/ui/" + name) as r:
            assert r.status == 404
    async with http.get(running.admin_url + "/v1/ui/state") as r:
        state = await r.json()
    assert [t["name"] for t in state["topology"]["triggers"]] == ["default/all"]
