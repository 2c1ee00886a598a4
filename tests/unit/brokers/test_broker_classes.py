"""The typed registry of broker classes and the classes' configuration checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventing.app.broker_classes import broker_classes
from eventing.app.process import process_id
from eventing.broker.sqlite_store import SqliteSettings
from eventing.errors import ConfigError
from eventing.resources.broker import Broker


def _broker(cls: str | None, config: bool = True) -> Broker:
    doc: dict[str, object] = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {
            "name": "b",
            "annotations": {} if cls is None else {"eventing.knative.dev/broker.class": cls},
        },
    }
    if config:
        doc["spec"] = {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}}
    return Broker.model_validate(doc)


CLASSES = broker_classes(SqliteSettings(Path("unused.db")), process_id="test")


@pytest.mark.parametrize(
    ("annotation", "name"),
    [
        (None, "Embedded"),
        ("MTChannelBasedBroker", "Embedded"),
        ("InMemory", "InMemory"),
        ("Kafka", "Kafka"),
        ("KafkaBroker", "Kafka"),
        ("RabbitMQBroker", "RabbitMQBroker"),
    ],
)
def test_class_annotation_chooses_the_class(annotation: str | None, name: str) -> None:
    assert CLASSES.of(_broker(annotation)).name == name


def test_unknown_class_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Bogus.*Embedded"):
        CLASSES.of(_broker("Bogus"))
    [(_path, value, message)] = CLASSES.check_class(_broker("Bogus"))
    assert value == "Bogus"
    assert "not a known broker class" in message


@pytest.mark.parametrize(
    ("cls", "data", "expected"),
    [
        ("Kafka", {}, "bootstrap.servers: is required"),
        ("Kafka", {"bootstrap.servers": "nohost"}, "not host:port"),
        ("Kafka", {"bootstrap.servers": "h:1", "default.topic.partitions": "0"}, "outside"),
        ("Kafka", {"bootstrap.servers": "h:1", "topic": "a b"}, "not a valid topic"),
        ("Kafka", {"bootstrap.servers": "h:1", "bogus": "1"}, "unknown key"),
        ("RabbitMQBroker", {}, "url: is required"),
        ("RabbitMQBroker", {"url": "http://x"}, "amqp://"),
        ("RabbitMQBroker", {"url": "amqp://h", "queueType": "lazy"}, "quorum"),
        ("RabbitMQBroker", {"url": "amqp://h", "prefetch": "x"}, "not an integer"),
    ],
)
def test_bad_class_configuration_is_reported(cls: str, data: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        CLASSES.build(_broker(cls), data)


def test_server_classes_need_a_config() -> None:
    with pytest.raises(ConfigError, match=r"spec\.config"):
        CLASSES.build(_broker("Kafka", config=False), {})


def test_process_id_is_stable_and_differs_per_data_dir(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert process_id(a) == process_id(a)
    assert process_id(a) != process_id(b)
    assert process_id(a, "node 1/x") == "node-1-x"
