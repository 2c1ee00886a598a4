"""The registry entry of the ``Kafka`` class (Knative's name, its ``KafkaNamespaced``
variant, which differs only in where Knative runs the data plane, and ``KafkaBroker``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from brokers.kafka.broker import KafkaBroker
from brokers.kafka.config import check, read_settings
from eventing.broker.registry import BrokerConfig
from eventing.resources.broker import KAFKA
from eventing.resources.broker import Broker as BrokerResource


@dataclass
class KafkaClass:
    process: str
    name: str = KAFKA
    aliases: tuple[str, ...] = ("KafkaBroker", "KafkaNamespaced")

    def check(self, model: BrokerResource, config: BrokerConfig) -> Iterable[tuple[str, str]]:
        if model.spec.config is None:
            return [("spec.config", "the Kafka class needs a ConfigMap with bootstrap.servers")]
        return check(model.key, config)

    def build(self, model: BrokerResource, config: BrokerConfig) -> KafkaBroker:
        settings, _ = read_settings(model.key, config)
        return KafkaBroker(model.key, KAFKA, settings, self.process)
