"""A KEDA ScaledObject, unchanged, drives a real Deployment: its rabbitmq trigger (host
from a Secret through a TriggerAuthentication) reads a real RabbitMQ queue's depth, the
Deployment on the test control plane scales out through the scale subresource (pods
Ready on kwok nodes) while messages wait, and back to 0 once the queue is empty."""

from __future__ import annotations

import asyncio
import base64

import aio_pika

from eventing.resources.refs import Platform
from tests.conftest import SystemFactory
from tests.integration.support import eventually, unique
from tests.support.k8s import Cluster, deployment_manifest, wait_for


def manifests(ns: str, queue: str, amqp_url: str) -> str:
    host = base64.b64encode(amqp_url.encode()).decode()
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default, namespace: {ns}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: rabbitmq, namespace: {ns}}}
data: {{host: {host}}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: rabbitmq-conn, namespace: {ns}}}
spec:
  secretTargetRef:
    - {{parameter: host, name: rabbitmq, key: host}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: consumer, namespace: {ns}}}
spec:
  scaleTargetRef: {{name: consumer}}
  pollingInterval: 1
  cooldownPeriod: 1
  maxReplicaCount: 3
  advanced:
    horizontalPodAutoscalerConfig:
      behavior: {{scaleDown: {{stabilizationWindowSeconds: 0}}}}
  triggers:
    - type: rabbitmq
      metadata: {{queueName: {queue}, mode: QueueLength, value: "5"}}
      authenticationRef: {{name: rabbitmq-conn}}
"""


def spec_replicas(cluster: Cluster, ns: str) -> int:
    scale = cluster.apps.read_namespaced_deployment_scale("consumer", ns, _request_timeout=10)
    return int(scale.spec.replicas or 0)


async def test_scaled_object_scales_a_deployment_on_a_rabbitmq_queue(
    k8s_cluster: Cluster, k8s_namespace: str, system: SystemFactory, amqp_url: str
) -> None:
    ns = k8s_namespace
    await asyncio.to_thread(
        k8s_cluster.apps.create_namespaced_deployment,
        ns,
        deployment_manifest("consumer", 0),
        _request_timeout=10,
    )
    queue_name = unique("keda")
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, auto_delete=False)
        running = await system(
            manifests(ns, queue_name, amqp_url),
            platform=Platform(kubeconfig=str(k8s_cluster.kubeconfig)),
        )
        workload = running.system.workloads.items[f"{ns}/consumer"]  # type: ignore[union-attr]
        for n in range(12):
            await channel.default_exchange.publish(
                aio_pika.Message(body=b"job %d" % n), routing_key=queue_name
            )
        # 12 waiting / 5 per replica (KEDA's value) -> 3 replicas.
        await eventually(
            lambda: workload.actuator.desired == 3, timeout=60, what="3 replicas wanted"
        )
        await asyncio.to_thread(
            wait_for,
            lambda: len(k8s_cluster.ready_pods(ns, "app=consumer")) == 3,
            timeout=90,
            what="3 Ready pods of Deployment consumer",
        )
        await queue.purge()
        await asyncio.to_thread(
            wait_for,
            lambda: spec_replicas(k8s_cluster, ns) == 0,
            timeout=90,
            what="Deployment consumer back to 0 once the queue is empty",
        )
        assert workload.actuator.error is None
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
