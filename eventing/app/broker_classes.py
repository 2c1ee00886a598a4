"""The broker classes this build knows, registered by name for
:class:`eventing.broker.registry.BrokerClasses`: the embedded durable class (one SQLite
file shared by every durable broker), the in-memory class, and the plugin classes
in ``brokers/`` (Kafka, RabbitMQ), which only this module imports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.memory_store import MemoryStore
from eventing.broker.registry import BrokerClasses, BrokerConfig
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.resources.broker import EMBEDDED, IN_MEMORY
from eventing.resources.broker import Broker as BrokerResource

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedClass:
    """``Embedded`` (also Knative's ``MTChannelBasedBroker``): SQLite in WAL mode."""

    sqlite: SqliteSettings
    name: str = EMBEDDED
    aliases: tuple[str, ...] = ("MTChannelBasedBroker",)
    _shared: SharedStore | None = field(default=None, repr=False)

    def check(self, model: BrokerResource, config: BrokerConfig) -> Iterable[tuple[str, str]]:
        return ()

    def build(self, model: BrokerResource, config: BrokerConfig) -> EmbeddedBroker:
        if self._shared is None:
            self._shared = SharedStore(SqliteStore(self.sqlite))
        return EmbeddedBroker(model.key, EMBEDDED, self._shared)


@dataclass
class MemoryClass:
    """``InMemory``: for tests and throwaway demos; says so in the log."""

    max_events: int
    max_bytes: int
    name: str = IN_MEMORY
    aliases: tuple[str, ...] = ()

    def check(self, model: BrokerResource, config: BrokerConfig) -> Iterable[tuple[str, str]]:
        return ()

    def build(self, model: BrokerResource, config: BrokerConfig) -> EmbeddedBroker:
        logger.warning(
            "broker %s is in-memory: its events are lost when the process "
            "exits (for tests and demos only)",
            model.key,
        )
        store = MemoryStore(max_events=self.max_events, max_bytes=self.max_bytes)
        return EmbeddedBroker(model.key, IN_MEMORY, SharedStore(store))


def broker_classes(sqlite: SqliteSettings, *, process_id: str) -> BrokerClasses:
    """Every class this build can run, registered under its names."""
    from brokers.kafka.broker_class import KafkaClass
    from brokers.rabbitmq.broker_class import RabbitmqClass

    classes = BrokerClasses()
    classes.register(EmbeddedClass(sqlite))
    classes.register(MemoryClass(sqlite.max_events, sqlite.max_bytes))
    classes.register(KafkaClass(process_id))
    classes.register(RabbitmqClass(process_id))
    return classes
