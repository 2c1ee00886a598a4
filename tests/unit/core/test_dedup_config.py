"""The deduplication annotations: parsed and bounded at load time (a bad value is a
load error naming the annotation), applied to a broker and to a source's emitter
marks (defaults per kind: on for sources whose ids come from upstream)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventing.app.dedup_config import SourceDedup, configure_broker, source_dedup
from eventing.app.registry import kind_registry
from eventing.broker.dedup import DEFAULT_MAX_IDS, DEFAULT_SECONDS, DedupWindow
from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.memory_store import MemoryStore
from eventing.resources.broker import Broker
from eventing.resources.dedup import DedupSettings, dedup_settings
from eventing.resources.loader import LoadError, load_resources

BROKER = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  annotations: {annotations}
"""

KAFKA_SOURCE = """apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata:
  name: clicks
  annotations: {annotations}
spec:
  bootstrapServers: ["127.0.0.1:9"]
  topics: [t]
  consumerGroup: g
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
"""

MQTT_SOURCE = """apiVersion: eventing.local/v1alpha1
kind: MqttSource
metadata:
  name: devices
  annotations: {annotations}
spec:
  url: mqtt://127.0.0.1:9
  topics: [a/#]
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
"""


def test_settings_parse_and_default() -> None:
    assert dedup_settings({}) == DedupSettings()
    parsed = dedup_settings(
        {
            "eventing.local/dedup": "False",
            "eventing.local/dedup-ingress": "true",
            "eventing.local/dedup-window": "PT10M",
            "eventing.local/dedup-max-ids": "500",
        }
    )
    assert parsed == DedupSettings(False, True, 600.0, 500)
    assert parsed.window(DedupWindow()) == DedupWindow(500, 600.0)
    assert DedupSettings().window(DedupWindow()) == DedupWindow(DEFAULT_MAX_IDS, DEFAULT_SECONDS)


@pytest.mark.parametrize(
    ("annotation", "value", "text"),
    [
        ("eventing.local/dedup", "yes", "must be 'true' or 'false'"),
        ("eventing.local/dedup-window", "10m", "ISO-8601"),
        ("eventing.local/dedup-window", "P60D", "at most 30 days"),
        ("eventing.local/dedup-max-ids", "0", "whole number from 1"),
        ("eventing.local/dedup-max-ids", "many", "whole number from 1"),
    ],
)
def test_a_bad_annotation_is_a_load_error(
    tmp_path: Path, annotation: str, value: str, text: str
) -> None:
    (tmp_path / "bad.yaml").write_text(BROKER.format(annotations=f"{{{annotation}: '{value}'}}"))
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, kind_registry())
    (error,) = info.value.errors
    assert error.path == "metadata.annotations"
    assert annotation in str(error), str(error)
    assert text in str(error), str(error)


def loaded(tmp_path: Path, *documents: str) -> list[object]:
    (tmp_path / "ok.yaml").write_text("---\n".join(documents))
    return list(load_resources(tmp_path, kind_registry()).resources)


def built(model: Broker) -> EmbeddedBroker:
    broker = EmbeddedBroker(model.key, "InMemory", SharedStore(MemoryStore()))
    configure_broker(broker, model)
    return broker


def test_a_broker_takes_its_window_ingress_and_switch(tmp_path: Path) -> None:
    annotations = (
        "{eventing.local/dedup-ingress: 'true', eventing.local/dedup-window: PT30S, "
        "eventing.local/dedup-max-ids: '7'}"
    )
    (model,) = loaded(tmp_path, BROKER.format(annotations=annotations))
    assert isinstance(model, Broker)
    broker = built(model)
    assert broker.dedup.ingress
    assert broker.dedup.enabled
    assert broker.dedup.window == DedupWindow(7, 30.0)
    off = built(
        model.model_copy(
            update={
                "metadata": model.metadata.model_copy(
                    update={"annotations": {"eventing.local/dedup": "false"}}
                )
            }
        )
    )
    assert not off.dedup.enabled
    assert not off.dedup.ingress


def test_sources_default_by_kind_and_the_annotation_overrides(tmp_path: Path) -> None:
    resources = loaded(
        tmp_path,
        BROKER.format(annotations="{eventing.local/dedup-window: PT2H}"),
        KAFKA_SOURCE.format(annotations="{eventing.local/dedup-max-ids: '9'}"),
        MQTT_SOURCE.format(annotations="{}"),
    )
    model, kafka, mqtt = resources
    assert isinstance(model, Broker)
    broker = built(model)
    marks = source_dedup(broker, kafka)  # type: ignore[arg-type]
    assert marks == SourceDedup("KafkaSource/default/clicks")
    assert broker.dedup.scopes[marks.scope].window == DedupWindow(9, 7200.0)  # broker's time
    assert source_dedup(broker, mqtt) == SourceDedup("")  # type: ignore[arg-type]


def test_mqtt_on_and_kafka_off_by_annotation(tmp_path: Path) -> None:
    model, kafka, mqtt = loaded(
        tmp_path,
        BROKER.format(annotations="{}"),
        KAFKA_SOURCE.format(annotations="{eventing.local/dedup: 'false'}"),
        MQTT_SOURCE.format(annotations="{eventing.local/dedup: 'true'}"),
    )
    broker = built(model)  # type: ignore[arg-type]
    assert source_dedup(broker, kafka) == SourceDedup("")  # type: ignore[arg-type]
    assert source_dedup(broker, mqtt) == SourceDedup(  # type: ignore[arg-type]
        "MqttSource/default/devices", forced=True
    )


def test_marks_keep_a_source_s_no_unless_forced() -> None:
    assert SourceDedup("s").mark(None) == "s"
    assert SourceDedup("s").mark("") == ""  # e.g. a hashed RabbitMQ id
    assert SourceDedup("s", forced=True).mark("") == "s"
    assert SourceDedup("").mark(None) == ""
