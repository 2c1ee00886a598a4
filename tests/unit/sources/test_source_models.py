"""Resource models of KafkaSource, RabbitmqSource and MqttSource: every documented
field parses (Knative's manifests load unchanged), and bad values give errors that name
the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from eventing.errors import ConfigError
from eventing.resources.base import Resource
from sources.kafka import adapter as kafka
from sources.mqtt import adapter as mqtt
from sources.rabbitmq import adapter as rabbitmq

SINK = {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}

KAFKA: dict[str, Any] = {  # every field Knative's KafkaSource v1beta1 documents
    "apiVersion": "sources.knative.dev/v1beta1",
    "kind": "KafkaSource",
    "metadata": {
        "name": "kafka-source",
        "namespace": "shop",
        "labels": {"kafkasources.sources.knative.dev/key-type": "int"},
        "annotations": {"eventing.local/max-message-bytes": "2048"},
    },
    "spec": {
        "consumerGroup": "knative-group",
        "consumers": 2,
        "initialOffset": "earliest",
        "ordering": "unordered",
        "bootstrapServers": ["my-cluster-kafka-bootstrap.kafka:9092"],
        "topics": ["knative-demo-topic", "other.topic"],
        "net": {
            "sasl": {
                "enable": False,
                "user": {"secretKeyRef": {"name": "s", "key": "u"}},
                "password": {"secretKeyRef": {"name": "s", "key": "p"}},
                "type": {"secretKeyRef": {"name": "s", "key": "t"}},
            },
            "tls": {
                "enable": False,
                "cert": {"secretKeyRef": {"name": "s", "key": "c"}},
                "key": {"secretKeyRef": {"name": "s", "key": "k"}},
                "caCert": {"secretKeyRef": {"name": "s", "key": "ca"}},
            },
        },
        "delivery": {"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT1S"},
        "sink": SINK,
        "ceOverrides": {"extensions": {"team": "shop"}},
    },
}
RABBITMQ: dict[str, Any] = {
    "apiVersion": "sources.knative.dev/v1alpha1",
    "kind": "RabbitmqSource",
    "metadata": {
        "name": "rabbitmq-source",
        "annotations": {"eventing.local/url": "amqp://app:${RMQ_PASSWORD}@mq:5672/"},
    },
    "spec": {
        "rabbitmqClusterReference": {
            "name": "rabbitmq",
            "namespace": "default",
            "connectionSecret": {"name": "rabbit-secret"},
        },
        "rabbitmqResourcesConfig": {
            "predeclared": False,
            "exchangeName": "eventing-rabbitmq",
            "queueName": "eventing-rabbitmq-source",
            "vhost": "/prod",
            "parallelism": 10,
        },
        "delivery": {"retry": 5, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"},
        "serviceAccountName": "rabbitmq-source-sa",
        "sink": SINK,
    },
}
MQTT: dict[str, Any] = {
    "apiVersion": "eventing.local/v1alpha1",
    "kind": "MqttSource",
    "metadata": {"name": "devices"},
    "spec": {
        "url": "mqtts://iot:${MQTT_PASSWORD}@broker.example:8883",
        "topics": ["site/+/telemetry", "site/alarms/#", "$share/eventing/site/#"],
        "qos": 1,
        "clientId": "eventing-devices",
        "protocolVersion": "3.1.1",
        "sessionExpiry": "PT1H",
        "keepAlive": "PT20S",
        "receiveMaximum": 50,
        "sink": SINK,
        "ceOverrides": {"extensions": {"fleet": "north"}},
    },
}
MODELS: list[tuple[type[Resource], dict[str, Any]]] = [
    (kafka.MODEL, KAFKA),
    (rabbitmq.MODEL, RABBITMQ),
    (mqtt.MODEL, MQTT),
]


@pytest.mark.parametrize(("model", "doc"), MODELS, ids=["kafka", "rabbitmq", "mqtt"])
def test_every_documented_field_parses(model: type[Resource], doc: dict[str, Any]) -> None:
    resource = model.model_validate(doc)
    assert doc["kind"] == resource.KIND
    assert doc["apiVersion"] in resource.API_VERSIONS


def test_parsed_values_and_defaults() -> None:
    k = kafka.MODEL.model_validate(KAFKA)
    assert (k.group, k.key_type, k.max_message_bytes) == ("knative-group", "int", 2048)
    minimal = copy.deepcopy(KAFKA)
    minimal["spec"] = {"bootstrapServers": ["a:1"], "topics": ["t"], "sink": SINK}
    minimal["metadata"] = {"name": "m"}
    k = kafka.MODEL.model_validate(minimal)
    assert (k.group, k.spec.initial_offset, k.spec.consumers, k.max_message_bytes) == (
        "eventing-kafkasource-default-m",
        "latest",
        1,
        1024 * 1024,
    )
    r = rabbitmq.MODEL.model_validate(RABBITMQ)
    assert r.url({"RMQ_PASSWORD": "s3cret"}) == "amqp://app:s3cret@mq:5672/%2Fprod"
    m = mqtt.MODEL.model_validate(MQTT)
    assert m.endpoint({"MQTT_PASSWORD": "pw"}) == ("broker.example", 8883, "iot", "pw", True)
    assert (m.spec.session_expiry, m.spec.keep_alive) == (3600.0, 20.0)


def test_rabbitmq_url_falls_back_to_environment_then_default() -> None:
    doc = copy.deepcopy(RABBITMQ)
    doc["metadata"] = {"name": "r"}
    doc["spec"]["rabbitmqResourcesConfig"].pop("vhost")
    r = rabbitmq.MODEL.model_validate(doc)
    assert r.url({"EVENTING_RABBITMQ_URL": "amqp://x/"}) == "amqp://x/"
    assert r.url({}) == "amqp://guest:guest@127.0.0.1:5672/"
    with pytest.raises(ConfigError, match="RMQ_PASSWORD"):
        rabbitmq.MODEL.model_validate(RABBITMQ).url({})


def with_change(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return changed


BAD: list[tuple[str, dict[str, Any], str, Any, str]] = [
    ("kafka", KAFKA, "spec.topics", [], "topics"),
    ("kafka", KAFKA, "spec.topics", ["bad topic!"], "topics"),
    ("kafka", KAFKA, "spec.bootstrapServers", ["no-port"], "bootstrapServers"),
    ("kafka", KAFKA, "spec.initialOffset", "oldest", "initialOffset"),
    ("kafka", KAFKA, "spec.consumers", 0, "consumers"),
    ("kafka", KAFKA, "spec.ordering", "random", "ordering"),
    ("kafka", KAFKA, "spec.sink", {"uri": "log:/etc/passwd"}, "sink"),
    ("kafka", KAFKA, "spec.sink", {"ref": {"kind": "Broker", "name": "Bad_Name"}}, "sink"),
    ("kafka", KAFKA, "spec.unknownField", 1, "unknownField"),
    ("kafka", KAFKA, "spec.ceOverrides", {"extensions": {"Bad_Name": "x"}}, "ceOverrides"),
    (
        "kafka",
        KAFKA,
        "metadata.labels",
        {"kafkasources.sources.knative.dev/key-type": "uuid"},
        "key-type",
    ),
    (
        "kafka",
        KAFKA,
        "metadata.annotations",
        {"eventing.local/max-message-bytes": "lots"},
        "max-message-bytes",
    ),
    ("rabbitmq", RABBITMQ, "spec.rabbitmqResourcesConfig.parallelism", 1001, "parallelism"),
    ("rabbitmq", RABBITMQ, "spec.rabbitmqResourcesConfig.queueName", KeyError, "queueName"),
    ("rabbitmq", RABBITMQ, "spec.rabbitmqResourcesConfig.exchangeName", KeyError, "exchangeName"),
    (
        "rabbitmq",
        RABBITMQ,
        "metadata.annotations",
        {"eventing.local/url": "http://x"},
        "eventing.local/url",
    ),
    ("rabbitmq", RABBITMQ, "spec.sink", KeyError, "sink"),
    ("mqtt", MQTT, "spec.topics", ["a/#/b"], "topics"),
    ("mqtt", MQTT, "spec.topics", ["a/b+/c"], "topics"),
    ("mqtt", MQTT, "spec.qos", 2, "qos"),
    ("mqtt", MQTT, "spec.protocolVersion", "4", "protocolVersion"),
    ("mqtt", MQTT, "spec.url", "http://broker", "url"),
    ("mqtt", MQTT, "spec.sessionExpiry", 60, "sessionExpiry"),
    ("mqtt", MQTT, "spec.receiveMaximum", 0, "receiveMaximum"),
]


@pytest.mark.parametrize(
    ("kind", "doc", "path", "value", "named"),
    BAD,
    ids=[f"{b[0]}:{b[2]}={b[3]!r}"[:60] for b in BAD],
)
def test_bad_values_name_the_field(
    kind: str, doc: dict[str, Any], path: str, value: Any, named: str
) -> None:
    model = {"kafka": kafka.MODEL, "rabbitmq": rabbitmq.MODEL, "mqtt": mqtt.MODEL}[kind]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(with_change(doc, path, value))
    described = " ".join(
        ".".join(str(p) for p in e["loc"]) + " " + str(e["msg"]) for e in caught.value.errors()
    )
    assert named in described


def test_kafka_net_secrets_are_refused_when_built() -> None:
    doc = with_change(KAFKA, "spec.net.sasl.enable", True)
    with pytest.raises(ConfigError, match=r"spec\.net"):
        kafka.build(kafka.MODEL.model_validate(doc))
