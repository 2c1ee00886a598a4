"""From devices to scaled consumers (docs/walkthrough-iot.md §6): messages published to
the real Mosquitto by several devices reach a Workload through an MqttSource, the
broker and a trigger; the workload scales out on the trigger's backlog while they
arrive, every message is handled, and it goes back to zero afterwards."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import SystemFactory
from tests.integration.e2e_support import mqtt_endpoint
from tests.integration.mqtt_support import publish_all, remove_sessions
from tests.integration.support import eventually, unique
from tests.support.subscriber import RecordingSubscriber

pytestmark = pytest.mark.integration
REPLICA = str(Path(__file__).resolve().parents[1] / "support" / "replica_app.py")


def manifests(mqtt_url: str, topic: str, client_id: str, report_url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: MqttSource
metadata: {{name: devices}}
spec:
  url: "{mqtt_url}"
  topics: ["{topic}"]
  clientId: "{client_id}"
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: consumer}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  env:
    - {{name: WORK_SECONDS, value: "0.05"}}
    - {{name: REPORT_URL, value: "{report_url}"}}
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling:
    maxReplicas: 4
    concurrencyPerReplica: 2
    keepAlive: fixed
    cooldownPeriod: 1
    stabilizationWindowSeconds: 0
  terminationGracePeriodSeconds: 5
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: telemetry}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: consumer}}}}
"""


@pytest.fixture
async def client_id(mqtt_url: str) -> AsyncIterator[str]:
    name = unique("wl-src")
    yield name
    await remove_sessions(mqtt_url, [name])


async def test_devices_scale_a_workload_through_an_mqtt_source(
    system: SystemFactory, subscriber: RecordingSubscriber, mqtt_url: str, client_id: str
) -> None:
    base = unique("wl-mqtt")
    text = manifests(mqtt_url, f"{base}/+/telemetry", client_id, f"{subscriber.url}/report")
    running = await system(text)
    workload = running.system.workloads.items["default/consumer"]  # type: ignore[union-attr]
    (source,) = running.sources
    await eventually(lambda: source.health.state == "connected", what="source connected")
    assert workload.pool.desired == 0

    most = 0

    def handled() -> set[str]:
        nonlocal most
        most = max(most, workload.pool.count("ready"))
        return {json.loads(r.body)["id"] for r in subscriber.received}

    host, port = mqtt_endpoint(mqtt_url)
    topics = [f"{base}/device-{n}/telemetry" for n in range(5)]
    sent = await publish_all(host, port, topics, 60, base)
    await eventually(lambda: len(handled()) >= len(sent), timeout=120, what="all handled")
    assert len(handled()) == len(sent) == 300
    pids = {json.loads(r.body)["pid"] for r in subscriber.received}
    assert len(pids) > 1 or most > 1, "one replica did all the work: no scale-out"
    await eventually(
        lambda: workload.pool.desired == 0 and not workload.pool.replicas,
        timeout=60,
        what="back to zero",
    )
