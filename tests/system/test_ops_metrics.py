"""The metrics operators asked for (issue 13), each read from ``/metrics`` of a running
system: webhook requests refused at the ingress (413, 408) in both ingress modes, the
oldest-event age per trigger, the delivery latency histogram per trigger, and the
tail drop counter. (Scale decisions by reason are asserted in the dashboard test,
after its burst.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventing.app.runtime import Running, RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.ingress.server import IngressSettings
from tests.support.mesh import run_system
from tests.support.subscriber import Answer, Received, RecordingSubscriber
from tests.support.wire import open_raw, raw_exchange, read_response, request_bytes

Runner = Callable[[str], AbstractAsyncContextManager[Running]]

HOOK = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: hook}
spec:
  path: /hooks/default/small
  maxBodyBytes: 16
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: guarded}
spec:
  path: /hooks/default/guarded
  auth: {bearer: {secretKeyRef: {name: guarded, key: token}}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""


def pipeline(url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: slow}}
spec:
  broker: default
  subscriber: {{uri: "{url}/slow"}}
  delivery: {{retry: 50, backoffPolicy: linear, backoffDelay: PT0.05S}}
"""


@pytest.fixture(params=[0, 1], ids=["in-process", "workers"])
def run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    workers: int = request.param
    monkeypatch.setenv("EVENTING_SECRET_GUARDED_TOKEN", "a-token-of-the-test")

    def running(text: str) -> AbstractAsyncContextManager[Running]:
        return run_system(
            tmp_path / "manifests",
            text,
            ingress=IngressSettings(read_timeout=0.5),
            data_dir=tmp_path / "data",
            drain_timeout=2.0,
            ingress_workers=workers,
        )

    return running


async def scrape(running: Running) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as http, http.get(running.admin_url + "/metrics") as r:
        text = await r.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def wait_metric(
    running: Running, name: str, predicate: Callable[[float | None], bool], **labels: str
) -> float | None:
    async with asyncio.timeout(30):
        while True:
            found = value(await scrape(running), name, **labels)
            if predicate(found):
                return found
            await asyncio.sleep(0.05)  # the next scrape; the condition is what we wait on


async def slow_body(url: str) -> int:
    """Announce 10 bytes, send 5, and wait for the answer (408 after the read deadline);
    then finish the body and send one more request, so aiohttp's lingering reader ends
    (see tests/system/test_bad_input.py)."""
    reader, writer = await open_raw(url)
    try:
        writer.write(request_bytes("POST", url, [("Content-Length", "10")], content_length=False))
        writer.write(b"12345")
        await writer.drain()
        async with asyncio.timeout(30):
            response = await read_response(reader)
        assert response is not None
        writer.write(b"67890" + request_bytes("OPTIONS", url, [], content_length=False))
        await writer.drain()
        async with asyncio.timeout(30):
            assert await read_response(reader) is not None
        return response.status
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_webhook_refusals_are_counted_by_source_and_status(run: Runner) -> None:
    async with run(HOOK) as running:
        async with (
            aiohttp.ClientSession() as http,
            http.post(running.ingress_url + "/hooks/default/small", data=b"x" * 100) as r,
        ):
            assert r.status == 413
        assert await slow_body(running.ingress_url + "/hooks/default/small") == 408
        async with (
            aiohttp.ClientSession() as http,
            http.post(running.ingress_url + "/hooks/default/guarded", data=b"{}") as r,
        ):
            assert r.status == 401  # no token: refused before the body is read
        twice = request_bytes(
            "POST",
            running.ingress_url + "/hooks/default/small",
            [("X-Request-Id", "a"), ("X-Request-Id", "b")],
            b"{}",
        )
        duplicated = await raw_exchange(running.ingress_url + "/hooks/default/small", twice)
        assert duplicated is not None
        assert duplicated.status == 400
        name = "eventing_webhook_requests_refused_total"
        await wait_metric(running, name, lambda v: v == 1, source="default/guarded", status="401")
        await wait_metric(running, name, lambda v: v == 1, source="default/hook", status="400")
        await wait_metric(running, name, lambda v: v == 1, source="default/hook", status="413")
        await wait_metric(running, name, lambda v: v == 1, source="default/hook", status="408")


class Gate:
    """Answers 503 until opened."""

    def __init__(self) -> None:
        self.open = False

    def __call__(self, received: Received, n: int) -> Answer:
        return Answer(202 if self.open else 503)


async def test_oldest_event_age_and_latency_per_trigger(tmp_path: Path) -> None:
    subscriber = RecordingSubscriber()
    gate = Gate()
    subscriber.responder = gate
    await subscriber.start()
    settings = RuntimeSettings(
        port=0, admin_port=0, drain_timeout=2.0, store=StoreSettings(data_dir=tmp_path / "d")
    )
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "system.yaml").write_text(pipeline(subscriber.url))
    running = await start(directory, settings)
    try:
        samples = await scrape(running)
        age = "eventing_trigger_oldest_event_age_seconds"
        assert value(samples, age, trigger="default/slow") == 0.0
        assert value(samples, "eventing_tail_dropped_total") == 0.0
        headers = {"ce-specversion": "1.0", "ce-id": "a1", "ce-source": "/t", "ce-type": "t"}
        url = running.ingress_url + "/default/default"
        async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as r:
            assert r.status == 202
        await subscriber.wait_count(2, "/slow")  # failed twice: it is being retried
        first = await wait_metric(
            running, age, lambda v: v is not None and v > 0, trigger="default/slow"
        )
        assert first is not None
        await wait_metric(
            running, age, lambda v: v is not None and v > first, trigger="default/slow"
        )  # it grows while the event waits
        async with aiohttp.ClientSession() as http, http.get(running.admin_url + "/v1/status") as r:
            (status,) = (await r.json())["triggers"]
        assert status["oldestAge"] is not None  # eventing status shows it too (OLDEST)
        gate.open = True
        await wait_metric(running, age, lambda v: v == 0.0, trigger="default/slow")
        samples = await scrape(running)
        latency = "eventing_delivery_latency_seconds"
        assert value(samples, latency + "_count", trigger="default/slow") == 1
        assert (value(samples, latency + "_sum", trigger="default/slow") or 0) > 0
        assert value(samples, latency + "_bucket", trigger="default/slow", le="+Inf") == 1
    finally:
        await stop(running, settings)
        await subscriber.stop()
