"""A Kubernetes ``ConfigMap`` (``v1``): string settings a resource refers to.

Knative configures a broker class through a ConfigMap named by the Broker's
``spec.config`` (the Kafka class reads ``bootstrap.servers``,
``default.topic.partitions``, ``default.topic.replication.factor`` from
``kafka-broker-config``). Loading the same kind keeps those manifests unchanged; what
each key means is the broker class's business (see docs/brokers.md).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from eventing.resources.base import Resource

MAX_KEYS = 256


class ConfigMap(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    KIND: ClassVar[str] = "ConfigMap"

    api_version: Literal["v1"]
    kind: Literal["ConfigMap"]
    data: dict[str, str] = Field(default_factory=dict, max_length=MAX_KEYS)
    immutable: bool | None = None
