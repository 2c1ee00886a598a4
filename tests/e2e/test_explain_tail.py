"""``eventing explain`` and ``eventing tail`` as a user runs them: subprocesses against
a running ``eventing run`` (itself a subprocess), and ``explain`` offline against the
same manifests. Every verdict they print must be the one routing applied: an event
``tail`` shows as matching a trigger is delivered to that trigger's subscriber."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.process import EventingProcess, reaped
from tests.support.subscriber import Answer, RecordingSubscriber

pytestmark = pytest.mark.e2e

MANIFESTS = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
spec:
  delivery: {{retry: 0, deadLetterSink: {{uri: "dlq:"}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: orders}}
spec:
  broker: default
  filters: [{{exact: {{type: com.example.order}}}}]
  subscriber: {{uri: "{url}/orders"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: big-eu}}
spec:
  broker: default
  filters:
    - prefix: {{type: com.example.}}
    - any:
        - exact: {{region: eu}}
        - not: {{exact: {{tier: free}}}}
    - cesql: "INT(amount) > 100"
  subscriber: {{uri: "{url}/big"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: broken}}
spec:
  broker: default
  filters: [{{exact: {{type: com.example.refund}}}}]
  subscriber: {{uri: "{url}/fail"}}
"""


async def cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventing.app.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def subscriber() -> AsyncIterator[RecordingSubscriber]:
    sub = RecordingSubscriber()
    sub.responder = lambda received, n: Answer(500 if received.path == "/fail" else 202)
    await sub.start()
    try:
        yield sub
    finally:
        await sub.stop()


@pytest.fixture
def manifests(tmp_path: Path, subscriber: RecordingSubscriber) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(MANIFESTS.format(url=subscriber.url))
    return directory


@pytest.fixture
async def eventing(manifests: Path, tmp_path: Path) -> AsyncIterator[EventingProcess]:
    proc = EventingProcess(manifests, tmp_path / "data")  # ingress workers: the default
    await proc.start()
    try:
        yield proc
    finally:
        await proc.terminate(30)


async def send(url: str, event_id: str, event_type: str, **ext: str) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/e2e",
        "ce-type": event_type,
        "Content-Type": "application/json",
        **{f"ce-{k}": v for k, v in ext.items()},
    }
    async with aiohttp.ClientSession() as http, http.post(url, data=b"{}", headers=headers) as r:
        assert r.status == 202, await r.text()


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["triggers"]}


async def test_explain_offline_names_each_clause(manifests: Path) -> None:
    code, out, _ = await cli(
        "explain",
        "-f",
        str(manifests),
        "--attr",
        "type=com.example.order",
        "--attr",
        "tier=free",
        "--attr",
        "amount=500",
        "--json",
    )
    assert code == 0
    doc = json.loads(out)
    rows = by_name(doc)
    assert rows["default/orders"]["matched"]
    big = rows["default/big-eu"]
    assert not big["matched"]
    assert big["reason"] == "filtered"
    prefix, any_clause, cesql = big["clauses"]
    assert prefix["verdict"] == "pass"
    assert any_clause["verdict"] == "fail"
    region, negated = any_clause["children"]
    assert region["checks"] == [
        {"attribute": "region", "expected": "eu", "actual": None, "ok": False}
    ]
    assert negated["verdict"] == "fail"
    assert negated["children"][0]["verdict"] == "pass"
    assert cesql["verdict"] == "pass"
    assert cesql["value"] is True
    assert doc["deliveredTo"] == [
        {"trigger": "default/orders", "subscriber": rows["default/orders"]["subscriber"]}
    ]
    assert doc["admission"]["ttl"]["stored"] == "255"

    code, out, _ = await cli(
        "explain", "-f", str(manifests), "--attr", "type=com.example.thing", "--attr", "amount=x"
    )
    assert code == 1  # delivered nowhere
    assert "NO MATCH default/big-eu (cesql:cast)" in out
    assert "no trigger of the broker matches" in out

    code, out, _ = await cli(
        "explain", "-f", str(manifests), "--attr", "type=a", "--attr", "knativebrokerttl=0"
    )
    assert code == 1
    assert "admission: 400 knativebrokerttl is 0" in out


async def test_explain_a_running_system_by_attributes_id_and_dead_letter(
    eventing: EventingProcess, subscriber: RecordingSubscriber
) -> None:
    admin = eventing.admin_url
    code, out, _ = await cli(
        "explain", "--admin", admin, "--attr", "type=com.example.order", "--output", "yaml"
    )
    assert code == 0
    assert "matched: true" in out

    await send(eventing.url(), "eu-1", "com.example.sale", region="eu", amount="250")
    code, out, _ = await cli("explain", "--admin", admin, "--id", "eu-1", "--json")
    assert code == 0
    doc = json.loads(out)
    assert [d["trigger"] for d in doc["deliveredTo"]] == ["default/big-eu"]
    await subscriber.wait_for(lambda _: "eu-1" in subscriber.ids("/big"), timeout=30)

    await send(eventing.url(), "refund-1", "com.example.refund")
    dead: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while not dead:
            code, out, _ = await cli("dlq", "list", "--admin", admin, "--json")
            dead = json.loads(out)["items"]
    code, out, _ = await cli("dlq", "list", "--admin", admin, "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(out)["items"][0]["trigger"] == "default/broken"
    code, out, _ = await cli("status", "--admin", admin, "--output", "yaml")
    assert code == 0
    status = yaml.safe_load(out)
    assert {t["name"] for t in status["triggers"]} == {
        "default/orders",
        "default/big-eu",
        "default/broken",
    }
    code, out, _ = await cli("explain", "--admin", admin, "--dlq", str(dead[0]["id"]), "--json")
    doc = json.loads(out)
    assert doc["event"]["id"] == "refund-1"
    assert "knativeerrorcode" not in doc["event"]  # explained as it was sent
    assert by_name(doc)["default/broken"]["matched"]

    code, _, err = await cli("explain", "--admin", admin, "--id", "never-sent")
    assert code == 1
    assert "no recent event with id 'never-sent'" in err


async def test_tail_shows_matches_and_why_not_as_json_lines(
    eventing: EventingProcess, subscriber: RecordingSubscriber
) -> None:
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventing.app.cli",
        "tail",
        "--admin",
        eventing.admin_url,
        "--cesql",
        "source = '/e2e'",
        "--count",
        "2",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with reaped(tail):
        assert tail.stderr is not None
        async with asyncio.timeout(60):
            assert b"tailing" in await tail.stderr.readline()
        await send(eventing.url(), "o-1", "com.example.order")
        await send(eventing.url(), "other-1", "org.other")
        async with asyncio.timeout(60):
            out, _ = await tail.communicate()
    assert tail.returncode == 0
    first, second = (json.loads(line) for line in out.decode().splitlines())
    assert first["event"]["id"] == "o-1"
    assert [m["trigger"] for m in first["matched"]] == ["default/orders"]
    why = {m["trigger"]: m["why"] for m in first["notMatched"]}
    assert why["default/broken"] == (
        "filters[0] exact: type='com.example.order' (wants 'com.example.refund')"
    )
    assert why["default/big-eu"] == (
        "filters[2] cesql 'INT(amount) > 100': missingAttribute: missing attribute 'amount'"
    )
    assert second["event"]["id"] == "other-1"
    assert second["matched"] == []
    await subscriber.wait_for(lambda _: "o-1" in subscriber.ids("/orders"), timeout=30)
