"""The registry entry of the ``RabbitMQBroker`` class (Knative's name)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from brokers.rabbitmq.broker import RabbitBroker
from brokers.rabbitmq.config import read_settings
from eventing.broker.registry import BrokerConfig
from eventing.resources.broker import RABBITMQ
from eventing.resources.broker import Broker as BrokerResource


@dataclass
class RabbitmqClass:
    process: str
    name: str = RABBITMQ
    aliases: tuple[str, ...] = ("RabbitMQ",)

    def check(self, model: BrokerResource, config: BrokerConfig) -> Iterable[tuple[str, str]]:
        if model.spec.config is None:
            return [("spec.config", "the RabbitMQ class needs a ConfigMap with url")]
        return read_settings(model.key, config)[1]

    def build(self, model: BrokerResource, config: BrokerConfig) -> RabbitBroker:
        settings, _ = read_settings(model.key, config)
        return RabbitBroker(model.key, RABBITMQ, settings, self.process)
