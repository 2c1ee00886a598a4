"""The dashboard in headless Chromium against ``eventing run`` (a subprocess): the page
loads with no console errors, shows a burst scaling a workload out and back to zero
(with the decisions and their reasons), and a dead letter replayed from the page
reaches its subscriber. Screenshots are kept under ``.artifacts/dashboard/``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.browser import ROOT, Browser, Page
from tests.support.process import EventingProcess
from tests.support.subscriber import Answer, Received, RecordingSubscriber

pytestmark = pytest.mark.e2e

REPLICA = str(ROOT / "tests" / "support" / "replica_app.py")
ARTIFACTS = ROOT / ".artifacts" / "dashboard"
WORKLOAD = "default/worker"


def manifests(url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: worker}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  env: [{{name: WORK_SECONDS, value: "0.3"}}]
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling:
    maxReplicas: 4
    concurrencyPerReplica: 1
    keepAlive: fixed
    cooldownPeriod: 2
    stabilizationWindowSeconds: 1
    drainHorizonSeconds: 2
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: jobs}}
spec:
  broker: default
  filters: [{{exact: {{type: job}}}}]
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: worker}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: flaky}}
spec:
  broker: default
  filters: [{{exact: {{type: refund}}}}]
  subscriber: {{uri: "{url}/refunds"}}
  delivery: {{retry: 0, deadLetterSink: {{uri: "dlq:"}}}}
"""


class Flaky:
    """Fails every request until told to recover."""

    def __init__(self) -> None:
        self.healthy = False

    def __call__(self, received: Received, n: int) -> Answer:
        return Answer(202 if self.healthy else 500)


@pytest.fixture
async def subscriber() -> AsyncIterator[RecordingSubscriber]:
    sub = RecordingSubscriber()
    await sub.start()
    try:
        yield sub
    finally:
        await sub.stop()


@pytest.fixture
async def eventing(
    tmp_path: Path, subscriber: RecordingSubscriber
) -> AsyncIterator[EventingProcess]:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(manifests(subscriber.url))
    proc = EventingProcess(directory, tmp_path / "data", "--ingress-workers", "0")
    await proc.start()
    try:
        yield proc
    finally:
        await proc.terminate(60)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    browser = Browser()
    await browser.start()
    try:
        tab = await browser.page()
        try:
            yield tab
        finally:
            await tab.close()
    finally:
        await browser.close()


async def send(url: str, count: int, event_type: str, prefix: str) -> None:
    async with aiohttp.ClientSession() as http:

        async def one(n: int) -> None:
            headers = {
                "ce-specversion": "1.0",
                "ce-id": f"{prefix}-{n}",
                "ce-source": "/dashboard-test",
                "ce-type": event_type,
            }
            async with http.post(url, data=b"{}", headers=headers) as r:
                assert r.status == 202

        await asyncio.gather(*(one(n) for n in range(count)))


async def scale_decisions(admin: str) -> dict[str, float]:
    """``eventing_scale_decisions_total`` of the workload, by reason."""
    async with aiohttp.ClientSession() as http, http.get(admin + "/metrics") as r:
        text = await r.text()
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "eventing_scale_decisions_total" and s.labels["workload"] == WORKLOAD
    }


async def explain_job(eventing: EventingProcess) -> dict[str, Any]:
    """``POST /v1/explain`` for a job event: the jobs trigger's row."""
    body = {"attributes": {"specversion": "1.0", "id": "x", "source": "/s", "type": "job"}}
    headers = {"Authorization": f"Bearer {eventing.admin_token()}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(eventing.admin_url + "/v1/explain", json=body, headers=headers) as r,
    ):
        doc = await r.json()
    rows: dict[str, dict[str, Any]] = {t["name"]: t for t in doc["triggers"]}
    return rows["default/jobs"]


def card(name: str) -> str:
    return f"document.querySelector('.card.workload[data-name=\"{name}\"]')"


async def test_dashboard_shows_a_burst_scaling_out_and_back_and_replays(
    eventing: EventingProcess, subscriber: RecordingSubscriber, page: Page
) -> None:
    flaky = Flaky()
    subscriber.responder = flaky
    await page.goto(eventing.admin_url + "/ui?token=" + eventing.admin_token())  # sets a cookie
    await page.wait_for("document.querySelector('#status').dataset.state === 'live'")
    assert await page.evaluate("document.querySelectorAll('#flow .node').length") == 5
    await page.screenshot(ARTIFACTS / "01-idle.png")

    await send(eventing.url(), 24, "job", "burst")
    await page.wait_for(f"Number({card(WORKLOAD)}.dataset.maxDesired) >= 2")
    await page.wait_for(f"Number({card(WORKLOAD)}.dataset.ready) >= 2")
    await page.screenshot(ARTIFACTS / "02-scaled-out.png")
    await page.wait_for(
        f"Number({card(WORKLOAD)}.dataset.ready) === 0"
        f" && {card(WORKLOAD)}.querySelector('li.decision[data-to=\"0\"]') !== null",
        timeout=120,
    )
    reasons = await page.evaluate(
        f"[...{card(WORKLOAD)}.querySelectorAll('li.decision')].map(li => li.textContent)"
    )
    assert any("scale up" in r or "activate" in r for r in reasons), reasons
    assert any("scale to zero" in r for r in reasons), reasons
    assert (
        await page.evaluate(
            "document.querySelector('.card.trigger[data-name=\"default/jobs\"]').dataset.delivered"
        )
        == "24"
    )
    await page.screenshot(ARTIFACTS / "03-back-to-zero.png")
    explained = await explain_job(eventing)
    assert explained["workload"] == {"ready": 0, "desired": 0}
    decisions = await scale_decisions(eventing.admin_url)
    assert decisions.get("scale_to_zero", 0) >= 1, decisions
    assert decisions.get("activate", 0) + decisions.get("scale_up", 0) >= 1, decisions

    await send(eventing.url(), 1, "refund", "refund")
    await page.wait_for("document.querySelector('#dlq tbody tr[data-id] button.replay') !== null")
    await page.screenshot(ARTIFACTS / "04-dead-letter.png")
    flaky.healthy = True
    await page.evaluate("document.querySelector('#dlq tbody button.replay').click()")
    await subscriber.wait_for(lambda rs: sum(r.path == "/refunds" for r in rs) >= 2, timeout=30)
    await page.wait_for("document.querySelector('#dlq-message').dataset.replayed === '1'")
    await page.wait_for("document.querySelector('#dlq tbody tr[data-id]') === null")
    await page.screenshot(ARTIFACTS / "05-replayed.png")
    assert page.errors == []
