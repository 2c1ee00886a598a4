"""RabbitMQ, Kafka and MQTT sources at system level: messages published to the real
servers arrive as CloudEvents at a real HTTP subscriber through the durable broker
and a trigger.

- the mapping of plain messages and of messages that already are CloudEvents (the
  cloudevents SDK's own Kafka and RabbitMQ bindings; MQTT 5 user properties and
  3.1.1 structured mode), per docs/sources.md;
- at-least-once while the store refuses (its bound reached because the subscriber does
  not answer 2xx yet): nothing acknowledged upstream beyond what was stored, then
  everything delivered;
- ``kill -9`` of ``eventing run`` mid-stream while the test keeps publishing;
- a restart of the server itself while the system runs: the source goes
  ``reconnecting`` and back to ``connected`` (admin API) and loses nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aio_pika
import aiomqtt
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.bindings import rabbitmq as sdk_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from eventing.errors import InvalidEventError, StoreFullError
from eventing.events import Event
from sources.rabbitmq.depth import RabbitmqQueueDepth
from sources.support.base import SourceHealth
from sources.support.emitting import emit_prefix
from tests.integration.e2e_support import (
    BROKER_KEY,
    KafkaPublisher,
    Load,
    MqttPublisher,
    Publisher,
    RabbitPublisher,
    StateWatch,
    create_topic,
    declare_rabbitmq,
    delete_rabbitmq,
    delete_topic,
    event_ids,
    event_payloads,
    exchange_of,
    kafka_source,
    manifests,
    missing,
    mqtt_endpoint,
    mqtt_source,
    rabbitmq_source,
    source_status,
    user_attributes,
    write_manifests,
)
from tests.integration.support import eventually, eventually_async, restart_server, unique
from tests.support.mesh import stored_events
from tests.support.process import EventingProcess
from tests.support.subscriber import Answer, Received, RecordingSubscriber

if TYPE_CHECKING:
    from eventing.app.runtime import Running
    from tests.conftest import SystemFactory

pytestmark = pytest.mark.integration

JSON = JSONFormat()
WHEN = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
MQTT_ID = re.compile(r"mqtt-[0-9a-f]{32}\Z")


# --- shared pieces ----------------------------------------------------------------------


def by_id(subscriber: RecordingSubscriber) -> dict[str, Event]:
    return {e.id: e for e in subscriber.events()}


async def connected(running: Running) -> None:
    await eventually(
        lambda: all(s.health.state == "connected" for s in running.sources),
        what="every source connected",
    )


def sdk_event(event_id: str, **extra: Any) -> CloudEvent:
    attributes: dict[str, Any] = {
        "id": event_id,
        "type": "com.example.order.paid",
        "source": "/shop/orders",
        "subject": "order-9",
        "time": WHEN,
        "datacontenttype": "application/json",
        "tenant": "acme",
        **extra,
    }
    return CloudEvent(attributes=attributes, data={"amount": 5, "id": event_id})


def expected_from_sdk(event: CloudEvent, **extra: Any) -> dict[str, Any]:
    """The attributes our broker must deliver for an SDK event (time as RFC 3339)."""
    attributes = {k: v for k, v in event.get_attributes().items() if v is not None}
    attributes["time"] = "2024-05-01T12:00:01Z"
    return {**attributes, **extra}


def same_json(data: bytes | None, expected: object) -> bool:
    return data is not None and json.loads(data) == expected


class Gate:
    """A subscriber that answers 503 until opened: the trigger keeps every event
    pending, so the store fills up to its bound."""

    def __init__(self) -> None:
        self.open = False

    def __call__(self, received: Received, n: int) -> Answer:
        return Answer(202) if self.open else Answer(503)


async def wait_all(
    subscriber: RecordingSubscriber,
    expected: Iterable[str],
    delivered: Callable[[Iterable[Received]], set[str]],
    timeout: float = 120.0,
) -> None:
    want = set(expected)
    try:
        await subscriber.wait_for(lambda rs: want <= delivered(rs), timeout=timeout)
    except TimeoutError:
        lost = missing(want, delivered(subscriber.received))
        raise AssertionError(
            f"{len(lost)} of {len(want)} messages never delivered, e.g. {lost[:10]}"
        ) from None


# --- fixtures: unique topology, deleted afterwards ----------------------------------


@pytest.fixture
async def rabbit_queue(amqp_url: str) -> AsyncIterator[str]:
    name = unique("e2e-rmq")
    await declare_rabbitmq(amqp_url, name)
    yield name
    await delete_rabbitmq(amqp_url, name)  # a fresh connection: the server may have restarted


@pytest.fixture
async def kafka_topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    name = unique("e2e-kafka")
    await create_topic(kafka_bootstrap, name)
    yield name
    await delete_topic(kafka_bootstrap, name)


@pytest.fixture
def kafka_group() -> str:
    """A unique consumer group; its offsets go with the topic when that is deleted
    (aiokafka's admin client cannot delete groups)."""
    return unique("e2e-group")


@pytest.fixture
async def mqtt_client_ids(mqtt_url: str) -> AsyncIterator[list[str]]:
    """Client ids for persistent-session sources; their sessions are removed afterwards
    (a clean start with session expiry 0), so Mosquitto keeps no queue for them."""
    ids: list[str] = []
    yield ids
    host, port = mqtt_endpoint(mqtt_url)
    for client_id in ids:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        async with aiomqtt.Client(
            host,
            port,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            properties=props,
        ):
            pass


@pytest.fixture
async def kafka_producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


# --- 1. mapping: plain messages wrapped, CloudEvents kept -----------------------------


async def test_rabbitmq_messages_arrive_as_cloudevents(
    system: SystemFactory, subscriber: RecordingSubscriber, amqp_url: str, rabbit_queue: str
) -> None:
    running = await system(
        manifests(subscriber.url, rabbitmq_source("orders", amqp_url, rabbit_queue))
    )
    await connected(running)
    binary = sdk_rabbitmq.to_binary(sdk_event("bin-1"), JSON)
    structured = sdk_rabbitmq.to_structured(sdk_event("str-1", priority="high"), JSON)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_of(rabbit_queue))
        messages = [
            aio_pika.Message(
                b'{"n":1}',
                message_id="order-1",
                content_type="application/json",
                timestamp=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
            ),
            aio_pika.Message(
                binary.body,
                headers=dict(binary.headers),
                content_type=binary.content_type,
            ),
            aio_pika.Message(structured.body, content_type=structured.content_type),
        ]
        for message in messages:
            await exchange.publish(message, routing_key="orders.paid")
        await subscriber.wait_count(3)
    events = by_id(subscriber)
    assert set(events) == {"order-1", "bin-1", "str-1"}
    plain = events["order-1"]
    assert user_attributes(plain) == {
        "specversion": "1.0",
        "id": "order-1",
        "type": "dev.knative.rabbitmq.event",
        "source": f"/apis/v1/namespaces/default/rabbitmqsources/orders#{rabbit_queue}",
        "subject": "order-1",
        "time": "2024-05-01T12:00:00.000Z",
        "datacontenttype": "application/json",
    }
    assert plain.data == b'{"n":1}'
    assert user_attributes(events["bin-1"]) == expected_from_sdk(sdk_event("bin-1"))
    assert same_json(events["bin-1"].data, {"amount": 5, "id": "bin-1"})
    assert user_attributes(events["str-1"]) == expected_from_sdk(
        sdk_event("str-1", priority="high")
    )
    assert same_json(events["str-1"].data, {"amount": 5, "id": "str-1"})
    assert all(r.path == "/all" for r in subscriber.received)
    assert "knativearrivaltime" in plain.attributes  # stamped by the broker on the way in


async def test_kafka_records_arrive_as_cloudevents(
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    kafka_bootstrap: str,
    kafka_topic: str,
    kafka_group: str,
    kafka_producer: AIOKafkaProducer,
) -> None:
    source = kafka_source(
        "clicks", kafka_bootstrap, kafka_topic, kafka_group, extensions={"team": "payments"}
    )
    running = await system(manifests(subscriber.url, source))
    plain = await kafka_producer.send_and_wait(
        kafka_topic,
        b"clicked",
        key=b"user-7",
        partition=1,
        timestamp_ms=1714564800000,
        headers=[("trace", b"abc"), ("content-type", b"text/plain")],
    )
    binary = sdk_kafka.to_binary(sdk_event("bin-1", partitionkey="cust-1"), JSON)
    structured = sdk_kafka.to_structured(sdk_event("str-1", team="overridden"), JSON)
    for message, partition in ((binary, 2), (structured, 0)):
        key = message.key.encode() if isinstance(message.key, str) else message.key
        await kafka_producer.send_and_wait(
            kafka_topic,
            message.value,
            key=key,
            partition=partition,
            headers=list(message.headers.items()),
        )
    await connected(running)
    await subscriber.wait_count(3)
    events = by_id(subscriber)
    plain_id = f"partition:1/offset:{plain.offset}"
    assert set(events) == {plain_id, "bin-1", "str-1"}
    assert user_attributes(events[plain_id]) == {
        "specversion": "1.0",
        "id": plain_id,
        "type": "dev.knative.kafka.event",
        "source": f"/apis/v1/namespaces/default/kafkasources/clicks#{kafka_topic}",
        "subject": f"partition:1#{plain.offset}",
        "time": "2024-05-01T12:00:00.000Z",
        "datacontenttype": "text/plain",
        "key": "user-7",
        "partitionkey": "user-7",
        "kafkaheadertrace": "abc",
        "team": "payments",
    }
    assert events[plain_id].data == b"clicked"
    assert user_attributes(events["bin-1"]) == expected_from_sdk(
        sdk_event("bin-1", partitionkey="cust-1"), team="payments"
    )
    assert same_json(events["bin-1"].data, {"amount": 5, "id": "bin-1"})
    # ceOverrides win over what the event carried (Knative's rule)
    assert user_attributes(events["str-1"]) == expected_from_sdk(
        sdk_event("str-1", team="overridden"), team="payments"
    )
    assert same_json(events["str-1"].data, {"amount": 5, "id": "str-1"})


def mqtt5_properties(content_type: str | None, user: dict[str, str] | None = None) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if content_type is not None:
        props.ContentType = content_type
    if user:
        props.UserProperty = list(user.items())
    return props


def mqtt_binary(event: CloudEvent) -> tuple[bytes, Properties]:
    """The MQTT 5 binary mode of the CloudEvents MQTT binding: each attribute a User
    Property of its own name, ``datacontenttype`` the Content Type property."""
    user: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if value is None or name == "datacontenttype":
            continue
        user[name] = value.isoformat().replace("+00:00", "Z") if name == "time" else str(value)
    content_type = event.get_datacontenttype()
    body = JSON.write_data(event.get_data(), content_type)
    return body, mqtt5_properties(content_type, user)


async def test_mqtt_messages_arrive_as_cloudevents(
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    mqtt_url: str,
    mqtt_client_ids: list[str],
) -> None:
    base = unique("e2e-mqtt")
    v5_id, v3_id = unique("e2e-v5"), unique("e2e-v3")
    mqtt_client_ids.extend([v5_id, v3_id])
    running = await system(
        manifests(
            subscriber.url,
            mqtt_source("devices", mqtt_url, [f"{base}/v5/#"], v5_id, extensions={"site": "dock"}),
            mqtt_source("legacy", mqtt_url, [f"{base}/v311/#"], v3_id, protocol="3.1.1"),
        )
    )
    await connected(running)
    host, port = mqtt_endpoint(mqtt_url)
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as v5:
        await v5.publish(
            f"{base}/v5/dock-7/temp", b"21.5", qos=1, properties=mqtt5_properties("text/plain")
        )
        body, props = mqtt_binary(sdk_event("bin-1"))
        await v5.publish(f"{base}/v5/events/bin", body, qos=1, properties=props)
        await v5.publish(
            f"{base}/v5/events/str",
            JSON.write(sdk_event("str-1")),
            qos=1,
            properties=mqtt5_properties("application/cloudevents+json"),
        )
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V311) as v311:
        await v311.publish(f"{base}/v311/events", JSON.write(sdk_event("v3-1")), qos=1)
        await v311.publish(f"{base}/v311/pump/raw", b"\x01\x02", qos=1)
    await subscriber.wait_count(5)
    events = subscriber.events()
    plain = [e for e in events if e.type == "local.eventing.mqtt.event"]
    assert len(plain) == 2
    v5_plain = next(e for e in plain if e.data == b"21.5")
    assert MQTT_ID.match(v5_plain.id)
    assert user_attributes(v5_plain) == {
        "specversion": "1.0",
        "id": v5_plain.id,
        "type": "local.eventing.mqtt.event",
        "source": "/apis/v1/namespaces/default/mqttsources/devices",
        "subject": f"{base}/v5/dock-7/temp",
        "datacontenttype": "text/plain",
        "site": "dock",
    }
    v3_plain = next(e for e in plain if e.data == b"\x01\x02")
    assert MQTT_ID.match(v3_plain.id)
    assert user_attributes(v3_plain) == {
        "specversion": "1.0",
        "id": v3_plain.id,
        "type": "local.eventing.mqtt.event",
        "source": "/apis/v1/namespaces/default/mqttsources/legacy",
        "subject": f"{base}/v311/pump/raw",
    }
    clouds = {e.id: e for e in events if e.type != "local.eventing.mqtt.event"}
    assert set(clouds) == {"bin-1", "str-1", "v3-1"}
    for event_id, extra in (("bin-1", {"site": "dock"}), ("str-1", {"site": "dock"})):
        assert user_attributes(clouds[event_id]) == expected_from_sdk(sdk_event(event_id), **extra)
    assert user_attributes(clouds["v3-1"]) == expected_from_sdk(sdk_event("v3-1"))
    for event_id, event in clouds.items():
        assert same_json(event.data, {"amount": 5, "id": event_id})


# --- 2. at-least-once while the store refuses -----------------------------------------


async def test_emit_prefix_stores_what_fits_of_a_batch_larger_than_the_bound() -> None:
    """What the store-full tests rely on, without servers: a batch larger than the
    store's room is stored up to the bound (not refused whole, forever), the rest is
    reported unstored, and ``failed`` counts the unstored items once."""
    room = 5
    stored_events: list[Event] = []

    async def bounded(events: Sequence[Event], /) -> None:
        if len(stored_events) + len(events) > room:
            raise StoreFullError("full")
        if any(e.id == "bad" for e in events):
            raise InvalidEventError("bad")
        stored_events.extend(events)

    def event(event_id: str) -> Event:
        return Event({"specversion": "1.0", "id": event_id, "source": "/s", "type": "t"})

    health = SourceHealth("test", "Test")
    items = [(n, event("bad" if n == 1 else f"e{n}")) for n in range(12)]
    log = logging.getLogger(__name__)
    outcome = await emit_prefix(bounded, items, health, log)
    assert [e.id for e in stored_events] == ["e0", "e2", "e3", "e4", "e5"]
    assert (outcome.stored, outcome.refused) == (6, [1])
    assert isinstance(outcome.error, StoreFullError)
    assert (health.emitted, health.refused, health.failed) == (5, 1, 6)
    again = await emit_prefix(bounded, items[outcome.stored :], health, log)
    assert (again.stored, health.failed) == (0, 12)


STORE_BOUND = 8
"""Smaller than a source's batch (prefetch 20, Kafka's 256, receive maximum 20): the
store fills part-way through a batch."""


def stored(running: Running) -> int:
    return stored_events(running, BROKER_KEY)


async def test_rabbitmq_acks_only_what_the_full_store_took(
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    amqp_url: str,
    rabbitmq_mgmt_url: str,
    rabbit_queue: str,
) -> None:
    gate = Gate()
    subscriber.responder = gate
    total = 40
    running = await system(
        manifests(subscriber.url, rabbitmq_source("orders", amqp_url, rabbit_queue)),
        max_events=STORE_BOUND,
    )
    source = running.sources[0]
    publisher = RabbitPublisher(amqp_url, rabbit_queue)
    await publisher.open()
    try:
        sent = [await publisher.send(n) for n in range(total)]
    finally:
        await publisher.close()
    await eventually(
        lambda: stored(running) == STORE_BOUND and source.health.failed > 0,
        what=f"the store full at {STORE_BOUND} events and the source refused",
    )
    depth = RabbitmqQueueDepth(rabbit_queue, management_url=rabbitmq_mgmt_url)
    try:

        async def rest_still_queued() -> bool:
            counts = await depth.counts()  # sampled by RabbitMQ once a second here
            return counts.ready + counts.unacknowledged == total - STORE_BOUND

        await eventually_async(rest_still_queued, what=f"{total - STORE_BOUND} still queued")
    finally:
        await depth.close()
    assert stored(running) == STORE_BOUND
    assert source.health.emitted == STORE_BOUND
    assert set(subscriber.ids()) <= set(sent)  # tried (503) but not acknowledged downstream
    gate.open = True
    await wait_all(subscriber, sent, event_ids)

    async def queue_empty() -> bool:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(rabbit_queue, passive=True)
            return queue.declaration_result.message_count == 0

    await eventually_async(queue_empty, what="every message acknowledged")


async def committed_total(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return sum(max(meta.offset, 0) for meta in offsets.values())


async def test_kafka_commits_only_what_the_full_store_took(
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    kafka_bootstrap: str,
    kafka_topic: str,
    kafka_group: str,
) -> None:
    gate = Gate()
    subscriber.responder = gate
    total = 60
    publisher = KafkaPublisher(kafka_bootstrap, kafka_topic)
    await publisher.open()
    try:
        sent = [await publisher.send(n) for n in range(total)]
    finally:
        await publisher.close()
    running = await system(
        manifests(
            subscriber.url, kafka_source("clicks", kafka_bootstrap, kafka_topic, kafka_group)
        ),
        max_events=STORE_BOUND,
    )
    source = running.sources[0]
    await eventually(
        lambda: stored(running) == STORE_BOUND and source.health.failed > 0,
        what=f"the store full at {STORE_BOUND} events and the source refused",
    )

    async def committed_what_was_stored() -> bool:
        return await committed_total(kafka_bootstrap, kafka_group, kafka_topic) == STORE_BOUND

    await eventually_async(committed_what_was_stored, what=f"{STORE_BOUND} offsets committed")
    assert stored(running) == STORE_BOUND
    assert source.health.emitted == STORE_BOUND
    gate.open = True
    await wait_all(subscriber, sent, event_ids)

    async def all_committed() -> bool:
        return await committed_total(kafka_bootstrap, kafka_group, kafka_topic) == total

    await eventually_async(all_committed, what="every offset committed")


async def test_mqtt_pubacks_only_what_the_full_store_took(
    tmp_path: Path, subscriber: RecordingSubscriber, mqtt_url: str, mqtt_client_ids: list[str]
) -> None:
    """MQTT cannot be asked what is unacknowledged, so: fill the store, kill the
    process while the source holds the rest without PUBACK, and check the server
    redelivers every one of them to the persistent session after the restart."""
    gate = Gate()
    subscriber.responder = gate
    base, client_id, total = unique("e2e-mqtt"), unique("e2e-full"), 30
    mqtt_client_ids.append(client_id)
    source = mqtt_source("devices", mqtt_url, [f"{base}/#"], client_id, receive_maximum=20)
    directory = write_manifests(tmp_path / "manifests", manifests(subscriber.url, source))
    proc = EventingProcess(directory, tmp_path / "data", "--max-store-events", str(STORE_BOUND))
    name = "mqttsource/default/devices"
    await proc.start()
    try:
        await wait_state(proc.admin_url, name, "connected")
        publisher = MqttPublisher(mqtt_url, f"{base}/sensor", base)
        await publisher.open()
        try:
            sent = [await publisher.send(n) for n in range(total)]
        finally:
            await publisher.close()

        async def store_full() -> bool:
            status = await source_status(proc.admin_url, name)
            return bool(status["emitted"] == STORE_BOUND and status["failed"] > 0)

        await eventually_async(store_full, what=f"{STORE_BOUND} emitted, then refused")
        await proc.kill()
        gate.open = True
        await proc.start()
        await wait_all(subscriber, sent, event_payloads)
    finally:
        await stop_process(proc)
    assert one_id_per_payload(subscriber.received)


# --- 3. kill -9 mid-stream; 4. server restart ----------------------------------------


@dataclass
class Rig:
    """One adapter's side of the crash and restart tests."""

    server: str
    """Its name for ``scripts/servers restart``."""
    source: dict[str, Any]
    source_name: str
    publisher: Callable[[], Publisher]
    delivered: Callable[[Iterable[Received]], set[str]]
    payload_keeps_its_id: bool = False
    """MQTT: a redelivery carries its packet id, so it keeps its event id. (For Kafka a
    producer retry may store the same payload twice, at two offsets.)"""


@pytest.fixture(params=["rabbitmq", "kafka", "mqtt"])
async def rig(
    request: pytest.FixtureRequest,
    amqp_url: str,
    kafka_bootstrap: str,
    mqtt_url: str,
    mqtt_client_ids: list[str],
) -> AsyncIterator[Rig]:
    kind = request.param
    if kind == "rabbitmq":
        queue = unique("e2e-rmq")
        await declare_rabbitmq(amqp_url, queue)
        yield Rig(
            "rabbitmq",
            rabbitmq_source("feed", amqp_url, queue),
            "rabbitmqsource/default/feed",
            lambda: RabbitPublisher(amqp_url, queue),
            event_ids,
        )
        await delete_rabbitmq(amqp_url, queue)
    elif kind == "kafka":
        topic, group = unique("e2e-kafka"), unique("e2e-group")
        await create_topic(kafka_bootstrap, topic)
        yield Rig(
            "kafka",
            kafka_source("feed", kafka_bootstrap, topic, group),
            "kafkasource/default/feed",
            lambda: KafkaPublisher(kafka_bootstrap, topic),
            event_ids,
        )
        await delete_topic(kafka_bootstrap, topic)
    else:
        base, client_id = unique("e2e-mqtt"), unique("e2e-feed")
        mqtt_client_ids.append(client_id)
        yield Rig(
            "mosquitto",
            mqtt_source("feed", mqtt_url, [f"{base}/#"], client_id),
            "mqttsource/default/feed",
            lambda: MqttPublisher(mqtt_url, f"{base}/load", base),
            event_payloads,
            payload_keeps_its_id=True,
        )


async def wait_state(admin_url: str, name: str, state: str, timeout: float = 60.0) -> None:
    async def reached() -> bool:
        return bool((await source_status(admin_url, name))["state"] == state)

    await eventually_async(reached, timeout=timeout, what=f"{name} {state}")


async def stop_process(proc: EventingProcess) -> None:
    if proc.proc is not None and proc.proc.returncode is None:
        code = await proc.terminate(60)
        assert code == 0, "\n".join(proc.output[-30:])


def one_id_per_payload(received: Iterable[Received]) -> bool:
    """MQTT redelivers an unacknowledged PUBLISH with its packet id, so a redelivered
    message keeps its event id (docs/sources.md)."""
    ids: dict[bytes | None, set[str]] = {}
    for r in received:
        if r.event is not None:
            ids.setdefault(r.event.data, set()).add(r.event.id)
    return all(len(v) == 1 for v in ids.values())


async def test_kill_9_mid_stream_loses_nothing(
    tmp_path: Path, subscriber: RecordingSubscriber, rig: Rig
) -> None:
    directory = write_manifests(tmp_path / "manifests", manifests(subscriber.url, rig.source))
    proc = EventingProcess(directory, tmp_path / "data")
    load = Load(rig.publisher)
    await proc.start()
    try:
        await wait_state(proc.admin_url, rig.source_name, "connected")
        load.start()
        await subscriber.wait_for(lambda rs: len(rs) >= 100, timeout=60)
        await proc.kill()  # SIGKILL while the test keeps publishing
        await load.wait_confirmed(len(load.confirmed) + 100)  # published while down
        await proc.start()
        await wait_state(proc.admin_url, rig.source_name, "connected")
        await load.wait_confirmed(len(load.confirmed) + 100)
        await load.stop()
        await wait_all(subscriber, load.confirmed, rig.delivered)
    finally:
        await load.stop()
        await stop_process(proc)
    assert one_id_per_payload(subscriber.received) or not rig.payload_keeps_its_id


async def test_server_restart_reconnects_and_loses_nothing(
    system: SystemFactory, subscriber: RecordingSubscriber, rig: Rig
) -> None:
    running = await system(manifests(subscriber.url, rig.source))
    watch = StateWatch(running.admin_url, rig.source_name)
    load = Load(rig.publisher)
    watch.start()
    try:
        await eventually(lambda: watch.seen[-1:] == ["connected"], what="connected")
        load.start()
        await subscriber.wait_for(lambda rs: len(rs) >= 50, timeout=60)
        await restart_server(rig.server)  # the system and the load keep running meanwhile

        def came_back() -> bool:
            seen = watch.seen
            if "reconnecting" not in seen:
                return False
            after = seen[seen.index("reconnecting") :]
            return "connected" in after and seen[-1] == "connected"

        await eventually(came_back, timeout=120, what="reconnecting, then connected again")
        assert watch.last["reconnects"] >= 1
        await load.wait_confirmed(len(load.confirmed) + 100)
        await load.stop()
        await wait_all(subscriber, load.confirmed, rig.delivered)
    finally:
        await load.stop()
        await watch.stop()
    assert one_id_per_payload(subscriber.received) or not rig.payload_keeps_its_id
