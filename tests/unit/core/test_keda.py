"""KEDA manifests load as Workloads: a ScaledObject with rabbitmq and kafka triggers
and TriggerAuthentication secret refs becomes a Workload scaling its target on the same
queue, with KEDA's defaults; what eventing cannot honour is a precise error."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from eventing.app.registry import kind_registry
from eventing.resources.loader import LoadError, load_resources
from eventing.resources.workload import Workload

SECRET_URL = "amqp://user:s3cret@127.0.0.1:5682/%2F"

RABBIT = f"""apiVersion: v1
kind: Secret
metadata: {{name: rabbit, namespace: shop}}
data:
  host: {base64.b64encode(SECRET_URL.encode()).decode()}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: rabbit-auth, namespace: shop}}
spec:
  secretTargetRef:
    - {{parameter: host, name: rabbit, key: host}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: orders, namespace: shop}}
spec:
  scaleTargetRef: {{name: orders-worker}}
  pollingInterval: 5
  cooldownPeriod: 60
  maxReplicaCount: 12
  advanced:
    horizontalPodAutoscalerConfig:
      behavior: {{scaleDown: {{stabilizationWindowSeconds: 45}}}}
  triggers:
    - type: rabbitmq
      metadata: {{queueName: orders, mode: QueueLength, value: "8", activationValue: "2"}}
      authenticationRef: {{name: rabbit-auth}}
"""

KAFKA = """apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: clicks}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: clicker}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: "k1:9092, k2:9092"
        consumerGroup: clickers
        topic: clicks
        offsetResetPolicy: earliest
"""


def load(tmp_path: Path, text: str) -> list[Workload]:
    (tmp_path / "keda.yaml").write_text(text)
    return load_resources(tmp_path, kind_registry()).of(Workload)


def test_rabbitmq_scaled_object_with_secret_becomes_a_workload(tmp_path: Path) -> None:
    [workload] = load(tmp_path, RABBIT)
    assert workload.key == "shop/orders"
    ref = workload.spec.scale_target_ref
    assert ref is not None
    assert (ref.api_version, ref.kind, ref.name) == ("apps/v1", "Deployment", "orders-worker")
    scaling = workload.spec.scaling
    [metric] = scaling.external_metrics
    assert (metric.type, metric.queue, metric.url) == ("rabbitmq", "orders", SECRET_URL)
    spec = workload.scaling_spec
    assert (spec.min_replicas, spec.max_replicas) == (0, 12)
    assert spec.target_per_replica == 8
    assert spec.activation_threshold == 2
    assert (spec.keep_alive, spec.scale_to_zero_after) == ("fixed", 60)
    assert spec.scale_down_stabilization == 45
    assert scaling.polling_interval == 5


def test_kafka_scaled_object_takes_keda_defaults(tmp_path: Path) -> None:
    [workload] = load(tmp_path, KAFKA)
    [metric] = workload.spec.scaling.external_metrics
    assert metric.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert (metric.consumer_group, metric.topic, metric.lag_threshold) == ("clickers", "clicks", 10)
    assert metric.offset_reset_policy == "earliest"
    spec = workload.scaling_spec
    assert (spec.max_replicas, spec.target_per_replica, spec.activation_threshold) == (100, 10, 0)
    assert (spec.scale_to_zero_after, spec.scale_down_stabilization) == (300, 300)
    assert workload.spec.scale_target_ref is not None
    assert workload.spec.scale_target_ref.kind == "StatefulSet"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("type: kafka", "type: prometheus", "trigger type 'prometheus' is not supported"),
        ("offsetResetPolicy: earliest", "sasl: plaintext", "metadata.sasl: is not supported"),
        ("  triggers:", "  fallback: {replicas: 2}\n  triggers:", "spec.fallback: is not supp"),
    ],
)
def test_what_cannot_be_honoured_is_an_error(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(LoadError, match=message):
        load(tmp_path, KAFKA.replace(old, new))


def test_missing_secret_is_named_without_leaking_values(tmp_path: Path) -> None:
    text = RABBIT.replace("name: rabbit, key: host", "name: other, key: host")
    with pytest.raises(LoadError) as info:
        load(tmp_path, text)
    assert "no Secret named 'other'" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_a_trigger_cannot_deliver_to_an_imported_scaled_object(tmp_path: Path) -> None:
    text = (
        RABBIT
        + """---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: shop}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t, namespace: shop}
spec:
  broker: default
  subscriber: {ref: {kind: Workload, name: orders}}
"""
    )
    with pytest.raises(LoadError, match="names no address to deliver to"):
        load(tmp_path, text)
