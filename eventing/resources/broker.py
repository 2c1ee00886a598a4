"""Knative ``Broker`` (``eventing.knative.dev/v1``) with the class annotation choosing
the broker class (Knative's ``eventing.knative.dev/broker.class``).

Which class names exist is not known here: the composition root fills a
:class:`eventing.broker.registry.BrokerClasses` and checks the annotation with it.
``spec.config`` names the ConfigMap with the class's settings (docs/brokers.md)."""

from __future__ import annotations

from typing import ClassVar, Final, Literal

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
KAFKA: Final = "Kafka"
RABBITMQ: Final = "RabbitMQBroker"


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
        """The class annotation as written (the composition root's broker-class
        registry checks it and maps Knative's aliases)."""
        return self.metadata.annotations.get(BROKER_CLASS_ANNOTATION, EMBEDDED)
