"""``traceparent`` end to end with the optional OTLP exporter: the subscriber gets the
producer's trace context, and the collector (a real HTTP server here, reading
OTLP/HTTP JSON) gets the broker's spans as children of the producer's span: one
``publish`` per event and one ``deliver`` per matching trigger, ERROR for a dead
letter. An event without a sampled traceparent produces no span."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from eventing.app.runtime import Running, RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.app.tracing import parse_traceparent
from tests.support.subscriber import Answer, Received, RecordingSubscriber

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """Receives OTLP/HTTP JSON at /v1/traces and keeps every span."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self.receive)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def receive(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        doc = await request.json()
        async with self.changed:
            for resource in doc["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    self.spans.extend(scope["spans"])
            self.changed.notify_all()
        return web.json_response({})

    async def wait(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(30), self.changed:
            await self.changed.wait_for(lambda: len(self.spans) >= count)
        return self.spans

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = Collector()
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def manifests(url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: ok}}
spec:
  broker: default
  subscriber: {{uri: "{url}/ok"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: bad}}
spec:
  broker: default
  subscriber: {{uri: "{url}/bad"}}
  delivery: {{retry: 0, deadLetterSink: {{uri: "dlq:"}}}}
"""


def test_parse_traceparent() -> None:
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-01") == (TRACE, PARENT)
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-00") is None  # not sampled
    assert parse_traceparent(f"00-{'0' * 32}-{PARENT}-01") is None
    assert parse_traceparent(f"00-{TRACE.upper()}-{PARENT}-01") is None
    assert parse_traceparent(5) is None


async def start_traced(
    tmp_path: Path, text: str, collector: Collector
) -> tuple[Running, RuntimeSettings]:
    """A system of ``text`` exporting its spans to ``collector``."""
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "system.yaml").write_text(text)
    settings = RuntimeSettings(
        port=0,
        admin_port=0,
        drain_timeout=2.0,
        otel_endpoint=collector.url,
        store=StoreSettings(data_dir=tmp_path / "d"),
    )
    running = await start(directory, settings)
    return running, settings


async def test_spans_are_children_of_the_producer_span(
    tmp_path: Path, subscriber: RecordingSubscriber, collector: Collector
) -> None:
    subscriber.responder = lambda r, n: Answer(500 if r.path == "/bad" else 202)
    running, settings = await start_traced(tmp_path, manifests(subscriber.url), collector)
    try:
        url = running.ingress_url + "/default/default"
        async with aiohttp.ClientSession() as http:
            for event_id, traceparent in (
                ("traced", f"00-{TRACE}-{PARENT}-01"),
                ("untraced", f"00-{TRACE}-{PARENT}-00"),
            ):
                headers = {
                    "ce-specversion": "1.0",
                    "ce-id": event_id,
                    "ce-source": "/t",
                    "ce-type": "t",
                    "ce-traceparent": traceparent,
                }
                async with http.post(url, headers=headers, data=b"{}") as r:
                    assert r.status == 202
        await subscriber.wait_count(4)
        received: list[Received] = [r for r in subscriber.received if r.path == "/ok"]
        assert {r.headers.get("traceparent") for r in received} == {
            f"00-{TRACE}-{PARENT}-01",
            f"00-{TRACE}-{PARENT}-00",
        }
        spans = await collector.wait(3)
    finally:
        await stop(running, settings)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"publish default/default", "deliver default/ok", "deliver default/bad"}
    for span in spans:
        assert span["traceId"] == TRACE
        assert span["parentSpanId"] == PARENT
        assert len(span["spanId"]) == 16
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
        attributes = {a["key"]: a["value"]["stringValue"] for a in span["attributes"]}
        assert attributes["cloudevents.event_id"] == "traced"
    assert by_name["publish default/default"]["kind"] == 4
    assert by_name["deliver default/ok"]["kind"] == 5
    assert by_name["deliver default/ok"]["status"] == {"code": 1}
    assert by_name["deliver default/bad"]["status"] == {"code": 2}


async def test_a_traced_duplicate_is_marked_on_its_publish_span(
    tmp_path: Path, subscriber: RecordingSubscriber, collector: Collector
) -> None:
    """A copy dropped as a duplicate (answered 202, not stored) still reports its
    ``publish`` span, marked ``eventing.duplicate``; only the stored copy is delivered."""
    deduplicating = "metadata: {name: default, annotations: {eventing.local/dedup-ingress: 'true'}}"
    text = manifests(subscriber.url).replace("metadata: {name: default}", deduplicating, 1)
    running, settings = await start_traced(tmp_path, text, collector)
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "twice",
        "ce-source": "/t",
        "ce-type": "t",
        "ce-traceparent": f"00-{TRACE}-{PARENT}-01",
    }
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(
                    running.ingress_url + "/default/default", headers=headers, data=b"{}"
                ) as r:
                    assert r.status == 202
        spans = await collector.wait(4)  # two publish spans, a deliver span per trigger
    finally:
        await stop(running, settings)
    assert sorted(r.path for r in subscriber.received) == ["/bad", "/ok"]

    def marks(span: dict[str, Any]) -> str | None:
        attributes = {a["key"]: a["value"]["stringValue"] for a in span["attributes"]}
        return attributes.get("eventing.duplicate")

    published = sorted((marks(s) for s in spans if s["name"] == "publish default/default"), key=str)
    assert published == [None, "true"]
    assert sorted(s["name"] for s in spans if s["name"].startswith("deliver")) == [
        "deliver default/bad",
        "deliver default/ok",
    ]
