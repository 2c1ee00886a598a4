"""Knative's ``KafkaSource`` (``sources.knative.dev/v1``, the version the upstream CRD
serves and its examples use, and ``v1beta1``), field for field, so a Knative manifest
loads unchanged.

Local meaning of the fields (docs/sources.md has the full reference):

- ``consumerGroup`` defaults to ``eventing-kafkasource-<namespace>-<name>``, not
  Knative's random ``knative-kafka-source-<uuid>``: a local restart must resume where
  it stopped, and there is no API server here to remember a generated name.
- ``initialOffset`` defaults to ``latest`` (as Knative); it applies only to partitions
  the group has never committed.
- ``consumers`` runs that many consumers of the group in this process.
- ``ordering`` is accepted; records are always stored in partition order (ordering of
  *delivery* is the trigger's ``delivery.ordering``).
- ``delivery`` is accepted for compatibility; delivery retries belong to triggers.
- ``net`` (SASL/TLS from Kubernetes secrets) is accepted, but enabling it is refused
  when the source is built: secrets are not resolved locally yet.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from eventing.resources.base import KNATIVE_SOURCES_V1, KNATIVE_SOURCES_V1BETA1, Model, Resource
from eventing.resources.delivery import DeliverySpec
from sources.kafka.binding import KEY_TYPES, KeyType
from sources.support.source_spec import BrokerSink, CloudEventOverrides, max_message_bytes

KEY_TYPE_LABEL: Final = "kafkasources.sources.knative.dev/key-type"
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}\Z")
_SERVER = re.compile(r"[^\s:/]+:\d{1,5}\Z")


def _topic(value: str) -> str:
    if not _TOPIC.match(value) or value in (".", ".."):
        raise ValueError("a Kafka topic name is 1-249 characters of a-z, A-Z, 0-9, '.', '_', '-'")
    return value


def _server(value: str) -> str:
    if not _SERVER.match(value):
        raise ValueError("a bootstrap server is host:port, for example 127.0.0.1:9092")
    return value


Topic = Annotated[str, AfterValidator(_topic)]
Server = Annotated[str, AfterValidator(_server)]


class SecretKeySelector(Model):
    name: str
    key: str
    optional: bool | None = None


class SecretValueFromSource(Model):
    secret_key_ref: SecretKeySelector | None = None


class KafkaSASLSpec(Model):
    enable: bool = False
    user: SecretValueFromSource | None = None
    password: SecretValueFromSource | None = None
    type: SecretValueFromSource | None = None


class KafkaTLSSpec(Model):
    enable: bool = False
    cert: SecretValueFromSource | None = None
    key: SecretValueFromSource | None = None
    ca_cert: SecretValueFromSource | None = None


class KafkaNetSpec(Model):
    sasl: KafkaSASLSpec = KafkaSASLSpec()
    tls: KafkaTLSSpec = KafkaTLSSpec()


class KafkaSourceSpec(Model):
    bootstrap_servers: list[Server] = Field(min_length=1)
    topics: list[Topic] = Field(min_length=1)
    consumer_group: str | None = Field(default=None, min_length=1, max_length=255)
    initial_offset: Literal["earliest", "latest"] = "latest"
    consumers: int = Field(default=1, ge=1, le=64)
    ordering: Literal["ordered", "unordered"] | None = None
    delivery: DeliverySpec | None = None
    net: KafkaNetSpec = KafkaNetSpec()
    sink: BrokerSink
    ce_overrides: CloudEventOverrides | None = None


class KafkaSourceResource(Resource):
    """A ``KafkaSource`` manifest."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (KNATIVE_SOURCES_V1, KNATIVE_SOURCES_V1BETA1)
    KIND: ClassVar[str] = "KafkaSource"

    api_version: Literal["sources.knative.dev/v1", "sources.knative.dev/v1beta1"]
    kind: Literal["KafkaSource"]
    spec: KafkaSourceSpec

    @property
    def group(self) -> str:
        return self.spec.consumer_group or f"eventing-kafkasource-{self.namespace}-{self.name}"

    @property
    def key_type(self) -> KeyType:
        value = self.metadata.labels.get(KEY_TYPE_LABEL, "string")
        return value  # type: ignore[return-value]  # checked in _check_metadata

    @property
    def max_message_bytes(self) -> int:
        return max_message_bytes(self.metadata)

    @model_validator(mode="after")
    def _check_metadata(self) -> KafkaSourceResource:
        key_type = self.metadata.labels.get(KEY_TYPE_LABEL, "string")
        if key_type not in KEY_TYPES:
            raise ValueError(
                f"metadata.labels[{KEY_TYPE_LABEL}] = {key_type!r} must be one of "
                f"{', '.join(KEY_TYPES)}"
            )
        max_message_bytes(self.metadata)
        return self
