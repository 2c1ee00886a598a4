"""Helpers for the system-level source tests (``test_sources_e2e.py``): manifests for a
source -> Broker -> Trigger -> subscriber system, a continuous publisher per server that
remembers what the server confirmed, and reading a source's state from the admin API.

Manifests are written as JSON documents (JSON is YAML), so no quoting can go wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import aiomqtt
from aio_pika.abc import AbstractConnection, AbstractExchange
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eventing.events import Event
from tests.integration.support import BROKER_SINK, unique
from tests.support.subscriber import Received

NAMESPACE = "default"
BROKER_KEY = "default/default"
#: Retries for as long as any test lets a subscriber fail, at a pace that stays gentle
#: on two cores (``linear``: the n-th retry waits n * 50 ms).
PATIENT_DELIVERY: dict[str, Any] = {
    "retry": 1000,
    "backoffDelay": "PT0.05S",
    "backoffPolicy": "linear",
}


def manifests(subscriber_url: str, *sources: dict[str, Any]) -> str:
    """A Broker ``default``, one Trigger (no filter) to ``subscriber_url``, and
    ``sources``, as one multi-document YAML text."""
    broker = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": "default"},
        "spec": {"delivery": PATIENT_DELIVERY},
    }
    trigger = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "all"},
        "spec": {"broker": "default", "subscriber": {"uri": f"{subscriber_url}/all"}},
    }
    return "\n---\n".join(json.dumps(doc) for doc in (broker, trigger, *sources)) + "\n"


def write_manifests(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "system.yaml").write_text(text)
    return directory


def rabbitmq_source(name: str, url: str, queue: str, *, parallelism: int = 20) -> dict[str, Any]:
    return {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "RabbitmqSource",
        "metadata": {"name": name, "annotations": {"eventing.local/url": url}},
        "spec": {
            "rabbitmqResourcesConfig": {
                "queueName": queue,
                "exchangeName": exchange_of(queue),
                "parallelism": parallelism,
            },
            "sink": BROKER_SINK,
        },
    }


def kafka_source(
    name: str,
    bootstrap: str,
    topic: str,
    group: str,
    *,
    extensions: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "bootstrapServers": [bootstrap],
        "topics": [topic],
        "consumerGroup": group,
        "initialOffset": "earliest",
        "sink": BROKER_SINK,
    }
    if extensions:
        spec["ceOverrides"] = {"extensions": extensions}
    return {
        "apiVersion": "sources.knative.dev/v1beta1",
        "kind": "KafkaSource",
        "metadata": {"name": name},
        "spec": spec,
    }


def mqtt_source(
    name: str,
    url: str,
    topics: list[str],
    client_id: str,
    *,
    protocol: str = "5",
    receive_maximum: int = 100,
    extensions: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "url": url,
        "topics": topics,
        "clientId": client_id,
        "protocolVersion": protocol,
        "receiveMaximum": receive_maximum,
        "sink": BROKER_SINK,
    }
    if extensions:
        spec["ceOverrides"] = {"extensions": extensions}
    return {
        "apiVersion": "eventing.local/v1alpha1",
        "kind": "MqttSource",
        "metadata": {"name": name},
        "spec": spec,
    }


def exchange_of(queue: str) -> str:
    return f"{queue}-x"


# --- topology the tests create (and delete) ------------------------------------------


async def declare_rabbitmq(url: str, queue: str) -> None:
    """The topology RabbitmqSource declares (durable topic exchange, durable queue,
    binding ``#``), declared up front so nothing published before the source connects
    is dropped by an exchange without a queue."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_of(queue), aio_pika.ExchangeType.TOPIC, durable=True
        )
        declared = await channel.declare_queue(queue, durable=True)
        await declared.bind(exchange, routing_key="#")


async def delete_rabbitmq(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange_of(queue))


async def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def mqtt_endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


# --- publishers that report what the server confirmed --------------------------------


class Publisher(Protocol):
    """One connection to a server; ``send(n)`` publishes message ``n`` and returns, once
    the server confirmed it, the key under which it must arrive (see ``key_of``)."""

    async def open(self) -> None: ...

    async def send(self, n: int) -> str: ...

    async def close(self) -> None: ...


class RabbitPublisher:
    """Persistent messages with ``message_id`` ``m-<n>`` through the queue's exchange,
    with publisher confirms (aio-pika's default): the key is the message id, which
    RabbitmqSource makes the event id."""

    def __init__(self, url: str, queue: str, prefix: str = "m") -> None:
        self.url, self.queue, self.prefix = url, queue, prefix
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None

    async def open(self) -> None:
        connection = await aio_pika.connect(self.url, timeout=10)
        self._connection = connection
        channel = await connection.channel()
        self._exchange = await channel.get_exchange(exchange_of(self.queue))

    async def send(self, n: int) -> str:
        assert self._exchange is not None
        message_id = f"{self.prefix}-{n}"
        message = aio_pika.Message(
            f"payload {n}".encode(),
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        async with asyncio.timeout(10):
            await self._exchange.publish(message, routing_key="load")
        return message_id

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await connection.close()


class KafkaPublisher:
    """Records acknowledged by all replicas, spread over 3 partitions: the key is
    ``partition:<p>/offset:<o>``, KafkaSource's event id for a plain record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._producer: AIOKafkaProducer | None = None

    async def open(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10000
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def send(self, n: int) -> str:
        assert self._producer is not None
        metadata = await self._producer.send_and_wait(
            self.topic, f"payload {n}".encode(), partition=n % 3
        )
        return f"partition:{metadata.partition}/offset:{metadata.offset}"

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await producer.stop()


class MqttPublisher:
    """QoS 1 publishes (``publish`` returns after the server's PUBACK): the key is the
    payload ``<base>-<n>``, since a wrapped message's id depends on the packet id the
    server assigns on the way out."""

    def __init__(self, url: str, topic: str, base: str) -> None:
        self.host, self.port = mqtt_endpoint(url)
        self.topic, self.base = topic, base
        self._client: aiomqtt.Client | None = None

    async def open(self) -> None:
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=unique("pub"),
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=10,
        )
        await client.__aenter__()
        self._client = client

    async def send(self, n: int) -> str:
        assert self._client is not None
        payload = f"{self.base}-{n}"
        await self._client.publish(self.topic, payload.encode(), qos=1, timeout=10)
        return payload

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)


@dataclass
class Load:
    """Publishes continuously with a fresh connection after any failure (a killed or
    restarting server), remembering the key of every message the server confirmed.

    A message whose publish failed may still have arrived; it is left out of
    ``confirmed`` (its number is never reused), so the delivered set may hold more.
    """

    factory: Callable[[], Publisher]
    pace: float = 0.005
    """Seconds between messages: keeps the generator from starving the system on two
    cores (a rate limit, not synchronisation)."""
    confirmed: list[str] = field(default_factory=list)
    failures: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="test: source load")

    async def _run(self) -> None:
        publisher: Publisher | None = None
        n = 0
        try:
            while True:
                try:
                    if publisher is None:
                        publisher = self.factory()
                        await publisher.open()
                    key = await publisher.send(n)
                except Exception:
                    self.failures += 1
                    if publisher is not None:
                        await publisher.close()
                    publisher = None
                    await asyncio.sleep(0.2)  # the server is down: retry at a calm pace
                else:
                    async with self._changed:
                        self.confirmed.append(key)
                        self._changed.notify_all()
                    await asyncio.sleep(self.pace)
                n += 1
        finally:
            if publisher is not None:
                await publisher.close()

    async def wait_confirmed(self, count: int, timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.confirmed) >= count)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


# --- what arrived ----------------------------------------------------------------------


def event_ids(received: Iterable[Received]) -> set[str]:
    return {r.event.id for r in received if r.event is not None}


def event_payloads(received: Iterable[Received]) -> set[str]:
    return {
        r.event.data.decode() for r in received if r.event is not None and r.event.data is not None
    }


def missing(expected: Iterable[str], delivered: set[str]) -> list[str]:
    return sorted(set(expected) - delivered)


def user_attributes(event: Event) -> dict[str, Any]:
    """The event's attributes without the extensions the broker stamps on the way in."""
    return {
        k: v
        for k, v in event.attributes.items()
        if k not in ("knativearrivaltime", "knativebrokerttl")
    }


# --- the admin API ----------------------------------------------------------------------


async def source_status(admin_url: str, name: str) -> dict[str, Any]:
    """The source's entry of ``GET {admin_url}/v1/status``."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{admin_url}/v1/status", timeout=aiohttp.ClientTimeout(total=5)) as response,
    ):
        response.raise_for_status()
        status: dict[str, Any] = await response.json()
    for source in status["sources"]:
        if source["name"] == name:
            return dict(source)
    raise AssertionError(f"no source {name!r} in /v1/status: {status['sources']}")


@dataclass
class StateWatch:
    """Polls a source's state through the admin API and remembers every state seen,
    so a test can tell that it went ``reconnecting`` and came back ``connected``."""

    admin_url: str
    name: str
    interval: float = 0.1
    seen: list[str] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"test: watch {self.name}")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                self.last = await source_status(self.admin_url, self.name)
                state = str(self.last["state"])
                if not self.seen or self.seen[-1] != state:
                    self.seen.append(state)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
