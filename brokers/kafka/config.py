"""The Kafka class's settings, read from the ConfigMap a Broker's ``spec.config``
names. Knative's keys keep their meaning; ours are marked.

=====================================  ===========================================
``bootstrap.servers``                  required; ``host:port[,host:port...]``
``default.topic.partitions``           partitions of a topic we create (default 10)
``default.topic.replication.factor``   replication of a topic we create (default 1;
                                       Knative's is 3, which one server cannot hold)
``topic`` (ours)                       the broker's topic (default
                                       ``knative-broker-<namespace>-<name>``)
``dlq.topic`` (ours)                   the ``dlq:`` topic (default ``<topic>.dlq``)
``consumer.group.prefix`` (ours)       trigger groups are ``<prefix><ns>-<name>``
                                       (default ``knative-trigger-``)
``consumer.buffer`` (ours)             records read ahead per trigger (default 500)
``producer.linger.ms`` (ours)          how long a produce waits for more records
                                       when the connection is idle (default 0)
``producer.batch.size`` (ours)         bytes of one partition's batch in a produce
                                       request (default 524288)
=====================================  ===========================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from brokers.support import ConfigReader

KNOWN = {
    "bootstrap.servers",
    "default.topic.partitions",
    "default.topic.replication.factor",
    "topic",
    "dlq.topic",
    "consumer.group.prefix",
    "consumer.buffer",
    "producer.linger.ms",
    "producer.batch.size",
}
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,200}\Z")
_SERVER = re.compile(r"[A-Za-z0-9._-]+:\d{1,5}\Z")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: tuple[str, ...]
    topic: str
    dlq_topic: str
    partitions: int
    replication_factor: int
    group_prefix: str
    buffer: int
    linger_ms: int = 0
    batch_size: int = 512 * 1024

    def group(self, trigger_key: str) -> str:
        return self.group_prefix + trigger_key.replace("/", "-")


def read_settings(
    broker_key: str, data: Mapping[str, str]
) -> tuple[KafkaSettings, list[tuple[str, str]]]:
    reader = ConfigReader(data, KNOWN)
    servers = tuple(s.strip() for s in reader.text("bootstrap.servers").split(",") if s.strip())
    for server in servers:
        if not _SERVER.match(server):
            reader.problems.append(("bootstrap.servers", f"{server[:60]!r} is not host:port"))
    default_topic = "knative-broker-" + broker_key.replace("/", "-")
    topic = reader.text("topic", default_topic)
    dlq_topic = reader.text("dlq.topic", topic + ".dlq")
    for key, name in (("topic", topic), ("dlq.topic", dlq_topic)):
        if name and not _TOPIC.match(name):
            reader.problems.append((key, f"{name[:60]!r} is not a valid topic name"))
    settings = KafkaSettings(
        bootstrap_servers=servers,
        topic=topic,
        dlq_topic=dlq_topic,
        partitions=reader.integer("default.topic.partitions", 10, 1, 10_000),
        replication_factor=reader.integer("default.topic.replication.factor", 1, 1, 32),
        group_prefix=reader.text("consumer.group.prefix", "knative-trigger-"),
        buffer=reader.integer("consumer.buffer", 500, 1, 100_000),
        linger_ms=reader.integer("producer.linger.ms", 0, 0, 1_000),
        # below the server's default message.max.bytes (1 MB): one batch is one message
        batch_size=reader.integer("producer.batch.size", 512 * 1024, 1024, 1_000_000),
    )
    return settings, reader.problems


def check(broker_key: str, data: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    return read_settings(broker_key, data)[1]
