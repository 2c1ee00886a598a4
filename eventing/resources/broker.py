"""Knative ``Broker`` (``eventing.knative.dev/v1``) with the class annotation choosing
the broker class (Knative's ``eventing.knative.dev/broker.class``)."""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import model_validator

from eventing.resources.base import (
    BROKER_CLASS_ANNOTATION,
    KNATIVE_EVENTING,
    KReference,
    Model,
    Resource,
)
from eventing.resources.delivery import DeliverySpec

EMBEDDED: Final = "Embedded"
IN_MEMORY: Final = "InMemory"
#: Knative's class names are accepted and mapped to our embedded class, so Knative
#: manifests load unchanged on one machine.
CLASS_ALIASES: Final = {
    "MTChannelBasedBroker": EMBEDDED,
    "Kafka": EMBEDDED,
    "RabbitMQBroker": EMBEDDED,
}
BROKER_CLASSES: Final = (EMBEDDED, IN_MEMORY)


class BrokerSpec(Model):
    config: KReference | None = None
    delivery: DeliverySpec | None = None


class Broker(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (KNATIVE_EVENTING,)
    KIND: ClassVar[str] = "Broker"

    api_version: Literal["eventing.knative.dev/v1"]
    kind: Literal["Broker"]
    spec: BrokerSpec = BrokerSpec()

    @property
    def broker_class(self) -> str:
        raw = self.metadata.annotations.get(BROKER_CLASS_ANNOTATION, EMBEDDED)
        return CLASS_ALIASES.get(raw, raw)

    @model_validator(mode="after")
    def _known_class(self) -> Broker:
        raw = self.metadata.annotations.get(BROKER_CLASS_ANNOTATION, EMBEDDED)
        if CLASS_ALIASES.get(raw, raw) not in BROKER_CLASSES:
            allowed = ", ".join((*BROKER_CLASSES, *CLASS_ALIASES))
            raise ValueError(
                f"metadata.annotations[{BROKER_CLASS_ANNOTATION}] = {raw!r} is not a known "
                f"broker class (allowed: {allowed})"
            )
        return self
