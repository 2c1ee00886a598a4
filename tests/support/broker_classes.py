"""Run the same system test against every broker class.

:func:`with_class` rewrites a manifest set so each ``Broker`` has the chosen class
(annotation + ``spec.config``) and adds the ConfigMap that class reads, with topic,
group, exchange and queue names no other test (or helper sharing the servers) uses.
:func:`cleanup` deletes what a server-backed class created.

The classes: ``embedded`` (SQLite), ``memory``, ``kafka`` and ``rabbitmq`` (the real
servers of ``scripts/servers``; an unreachable server fails the test, unless
``EVENTING_SKIP_INTEGRATION=1``).
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

AMQP_URL = os.environ.get("EVENTING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5682/")
KAFKA_BOOTSTRAP = os.environ.get("EVENTING_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9192")
SKIP_ENV = "EVENTING_SKIP_INTEGRATION"

CLASSES = ("embedded", "memory", "kafka", "rabbitmq")
SERVER_CLASSES = ("kafka", "rabbitmq")
ANNOTATION = "eventing.knative.dev/broker.class"


def params() -> list[Any]:
    """``pytest.param`` per class; the server-backed ones marked ``integration``."""
    return [
        pytest.param(name, marks=[pytest.mark.integration] if name in SERVER_CLASSES else [])
        for name in CLASSES
    ]


@dataclass
class Created:
    """What a server-backed class made, for :func:`cleanup`."""

    kafka_topics: list[str] = field(default_factory=list)
    rabbit_exchanges: list[str] = field(default_factory=list)
    rabbit_queue_prefixes: list[str] = field(default_factory=list)


def require_server(name: str) -> None:
    if name not in SERVER_CLASSES:
        return
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1")
    address = KAFKA_BOOTSTRAP if name == "kafka" else AMQP_URL
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 3):
            pass
    except OSError as exc:
        pytest.fail(f"{name} is not reachable ({exc}); run scripts/servers up", pytrace=False)


def with_class(text: str, name: str, created: Created, **config: str) -> str:
    """The manifests with every Broker of class ``name`` (embedded: unchanged)."""
    if name == "embedded":
        return text
    docs = [d for d in yaml.safe_load_all(text) if d]
    extra: list[dict[str, Any]] = []
    for doc in docs:
        if doc.get("kind") != "Broker":
            continue
        meta = doc.setdefault("metadata", {})
        meta.setdefault("annotations", {})[ANNOTATION] = {
            "memory": "InMemory",
            "kafka": "Kafka",
            "rabbitmq": "RabbitMQBroker",
        }[name]
        if name == "memory":
            continue
        unique = f"eventing-test-{uuid.uuid4().hex[:10]}"
        cm_name = f"{meta['name']}-{name}-config"
        data: dict[str, str]
        if name == "kafka":
            data = {
                "bootstrap.servers": KAFKA_BOOTSTRAP,
                "default.topic.partitions": "3",
                "topic": unique,
                "consumer.group.prefix": unique + "-",
            }
            created.kafka_topics += [unique, unique + ".dlq"]
        else:
            data = {"url": AMQP_URL, "exchange": unique}
            created.rabbit_exchanges.append(unique)
            created.rabbit_queue_prefixes.append(unique + ".")
        data.update(config)
        doc.setdefault("spec", {})["config"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": cm_name,
        }
        extra.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": cm_name, "namespace": meta.get("namespace", "default")},
                "data": data,
            }
        )
    return yaml.safe_dump_all(docs + extra, sort_keys=False)


async def cleanup(created: Created) -> None:
    """Delete the topics, exchanges and queues a test's brokers created."""
    if created.kafka_topics:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            gone = [t for t in created.kafka_topics if t in existing]
            if gone:
                await admin.delete_topics(gone)
        finally:
            await admin.close()
    if created.rabbit_exchanges:
        import aio_pika

        connection = await aio_pika.connect(AMQP_URL)
        try:
            for exchange in created.rabbit_exchanges:
                for queue in await _queues_with_prefix(exchange + "."):
                    channel = await connection.channel()
                    await channel.queue_delete(queue)
                    await channel.close()
                channel = await connection.channel()
                await channel.exchange_delete(exchange)
                await channel.close()
        finally:
            await connection.close()


async def _queues_with_prefix(prefix: str) -> list[str]:
    """Queue names from the management API (the test server's)."""
    import aiohttp

    mgmt = os.environ.get("EVENTING_TEST_RABBITMQ_MGMT_URL", "http://guest:guest@127.0.0.1:15682/")
    parts = urlsplit(mgmt)
    token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    url = f"{parts.scheme}://{parts.hostname}:{parts.port}/api/queues?columns=name"
    headers = {"Authorization": f"Basic {token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        if response.status != 200:
            return []
        items = await response.json()
    return [q["name"] for q in items if str(q.get("name", "")).startswith(prefix)]
