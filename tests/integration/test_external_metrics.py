"""A Workload scaled on an external RabbitMQ queue, as KEDA does: messages waiting in a
queue nobody consumes through a trigger start replicas; an empty queue sends the
workload back to zero. The probe is the sources package's management-API depth."""

from __future__ import annotations

import sys
from pathlib import Path

import aio_pika
import pytest

from tests.conftest import SystemFactory
from tests.integration.support import eventually, unique

pytestmark = pytest.mark.integration
REPLICA = str(Path(__file__).resolve().parents[1] / "support" / "replica_app.py")


def manifests(queue: str, mgmt_url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: consumer}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling:
    maxReplicas: 3
    targetPerReplica: 5          # KEDA's queueLength: 5 messages per replica
    keepAlive: fixed
    cooldownPeriod: 1
    stabilizationWindowSeconds: 0
    pollingInterval: 0.2
    externalMetrics:
      - type: rabbitmq
        queue: {queue}
        managementUrl: "{mgmt_url}"
  terminationGracePeriodSeconds: 5
"""


async def test_workload_scales_on_an_external_queue_and_back_to_zero(
    system: SystemFactory, amqp_url: str, rabbitmq_mgmt_url: str
) -> None:
    queue_name = unique("ext-metric")
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, auto_delete=False)
        running = await system(manifests(queue_name, rabbitmq_mgmt_url))
        workload = running.system.workloads.items["default/consumer"]  # type: ignore[union-attr]
        assert workload.pool.desired == 0
        for n in range(12):
            await channel.default_exchange.publish(
                aio_pika.Message(body=b"job %d" % n), routing_key=queue_name
            )
        # 12 waiting / 5 per replica -> 3 replicas (the management API samples every
        # few seconds, so allow for its staleness).
        await eventually(
            lambda: workload.pool.count("ready") == 3,
            timeout=60,
            what="3 ready replicas for 12 waiting messages",
        )
        assert workload.scaler.last is not None
        await queue.purge()
        await eventually(
            lambda: workload.pool.desired == 0 and not workload.pool.replicas,
            timeout=60,
            what="back to zero once the queue is empty",
        )
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def test_activation_threshold_holds_an_external_queue_at_zero(
    system: SystemFactory, amqp_url: str
) -> None:
    """``activationThreshold: 5``: 3 waiting messages leave the workload at zero (the
    probe reads them, the decider holds), 7 start it (KEDA's activationQueueLength)."""
    queue_name = unique("ext-activation")
    text = (
        manifests(queue_name, "unused")
        .replace('managementUrl: "unused"', f'url: "{amqp_url}"')
        .replace("targetPerReplica: 5 ", "activationThreshold: 5\n    targetPerReplica: 5 ")
    )
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, auto_delete=False)
        running = await system(text)
        workload = running.system.workloads.items["default/consumer"]  # type: ignore[union-attr]
        ext = workload.scaler.external[0]

        async def publish(n: int) -> None:
            for i in range(n):
                await channel.default_exchange.publish(
                    aio_pika.Message(body=b"job %d" % i), routing_key=queue_name
                )

        await publish(3)
        await eventually(
            lambda: ext.last is not None and ext.last.value == 3,
            timeout=30,
            what="the probe reads 3 waiting messages",
        )
        assert ext.last is not None
        assert not ext.last.active
        seen = workload.scaler.last_at
        await eventually(
            lambda: workload.scaler.last_at != seen, timeout=10, what="a decision after the read"
        )
        assert workload.pool.desired == 0
        assert workload.scaler.last is not None
        assert workload.scaler.last.reason.startswith("hold at zero")
        await publish(4)
        await eventually(
            lambda: workload.pool.desired >= 1, timeout=30, what="activation above the threshold"
        )
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
