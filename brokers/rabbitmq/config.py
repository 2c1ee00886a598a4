"""The RabbitMQ class's settings, read from the ConfigMap a Broker's ``spec.config``
names (Knative configures this class with a ``RabbitmqBrokerConfig`` pointing at a
cluster; on one machine a ConfigMap with the URL does the same job).

====================  ==========================================================
``url``               required: ``amqp://user:password@host:port/vhost`` (the
                      password never appears in status or logs)
``queueType``         ``quorum`` (default, replicated) or ``classic`` (Knative's
                      ``RabbitmqBrokerConfig.spec.queueType``)
``exchange``          the broker's headers exchange (default
                      ``eventing.<namespace>.<name>``)
``queuePrefix``       trigger queues are ``<queuePrefix><ns>.<trigger>`` (default
                      ``<exchange>.``)
``deadLetterQueue``   the ``dlq:`` stream (default ``<exchange>.dlq``)
``prefetch``          unacknowledged messages per trigger and process (default 100)
``managementUrl``     optional ``http://user:password@host:15672``: the backlog is
                      then ready + unacked over every process (else ready + this
                      process's unacked)
====================  ==========================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from brokers.support import ConfigReader

KNOWN = {
    "url",
    "queueType",
    "exchange",
    "queuePrefix",
    "deadLetterQueue",
    "prefetch",
    "managementUrl",
}
_NAME = re.compile(r"[A-Za-z0-9._:-]{1,200}\Z")


@dataclass(frozen=True)
class RabbitSettings:
    url: str
    queue_type: str
    exchange: str
    queue_prefix: str
    dead_letter_queue: str
    prefetch: int
    management_url: str | None

    def queue(self, trigger_key: str) -> str:
        return self.queue_prefix + trigger_key.replace("/", ".")


def read_settings(
    broker_key: str, data: Mapping[str, str]
) -> tuple[RabbitSettings, list[tuple[str, str]]]:
    reader = ConfigReader(data, KNOWN)
    url = reader.text("url")
    if url and not url.startswith(("amqp://", "amqps://")):
        reader.problems.append(("url", "must start with amqp:// or amqps://"))
    exchange = reader.text("exchange", "eventing." + broker_key.replace("/", "."))
    prefix = reader.text("queuePrefix", exchange + ".")
    dlq = reader.text("deadLetterQueue", exchange + ".dlq")
    for key, name in (("exchange", exchange), ("queuePrefix", prefix), ("deadLetterQueue", dlq)):
        if name and not _NAME.match(name):
            reader.problems.append((key, f"{name[:60]!r} has characters outside A-Za-z0-9._:-"))
    management = data.get("managementUrl") or None
    if management is not None and not management.startswith(("http://", "https://")):
        reader.problems.append(("managementUrl", "must start with http:// or https://"))
    settings = RabbitSettings(
        url=url,
        queue_type=reader.choice("queueType", "quorum", ("quorum", "classic")),
        exchange=exchange,
        queue_prefix=prefix,
        dead_letter_queue=dlq,
        prefetch=reader.integer("prefetch", 100, 1, 65_535),
        management_url=management,
    )
    return settings, reader.problems
