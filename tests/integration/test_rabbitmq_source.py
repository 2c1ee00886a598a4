"""RabbitmqSource against a real RabbitMQ: mapping, at-least-once under store failures,
a server restart mid-stream, refused messages, and queue-depth readings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from sources.rabbitmq.adapter import MODEL, RabbitmqAdapter, build
from sources.rabbitmq.depth import RabbitmqQueueDepth
from tests.integration.support import (
    BROKER_SINK,
    RecordingEmit,
    eventually,
    eventually_async,
    restart_server,
    running,
    unique,
)

pytestmark = pytest.mark.integration


def source(
    url: str,
    queue: str,
    *,
    parallelism: int = 20,
    annotations: dict[str, str] | None = None,
    predeclared: bool = False,
) -> RabbitmqAdapter:
    config: dict[str, Any] = {"queueName": queue, "parallelism": parallelism}
    if predeclared:
        config["predeclared"] = True
    else:
        config["exchangeName"] = f"{queue}-x"
    resource = MODEL.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1alpha1",
            "kind": "RabbitmqSource",
            "metadata": {
                "name": "orders",
                "annotations": {"eventing.local/url": url, **(annotations or {})},
            },
            "spec": {"rabbitmqResourcesConfig": config, "sink": BROKER_SINK},
        }
    )
    return build(resource)


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel()


@pytest.fixture
async def queue_name(amqp_url: str) -> AsyncIterator[str]:
    """A unique queue (and its exchanges) deleted after the test, over a fresh
    connection: the test may have restarted the server."""
    name = unique("it-rmq")
    yield name
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        cleanup = await connection.channel()
        for queue in (name, f"{name}-dlq"):
            await cleanup.queue_delete(queue)
        for exchange in (f"{name}-x", f"{name}-dlx"):
            await cleanup.exchange_delete(exchange)


async def publish(channel: AbstractChannel, queue: str, message: aio_pika.Message) -> None:
    exchange = await channel.get_exchange(f"{queue}-x")
    await exchange.publish(message, routing_key="any.key")


async def test_messages_become_events(
    amqp_url: str, channel: AbstractChannel, queue_name: str
) -> None:
    emit = RecordingEmit()
    adapter = source(amqp_url, queue_name)
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        await publish(
            channel,
            queue_name,
            aio_pika.Message(b'{"n":1}', content_type="application/json", message_id="order-1"),
        )
        await publish(
            channel,
            queue_name,
            aio_pika.Message(
                b"raw",
                headers={
                    "ce-specversion": "1.0",
                    "ce-id": "b-1",
                    "ce-type": "t.binary",
                    "ce-source": "/app",
                    "ce-flag": True,
                    "ce-count": 7,
                },
                content_type="text/plain",
            ),
        )
        structured = {
            "specversion": "1.0",
            "id": "s-1",
            "type": "t.structured",
            "source": "/app",
            "data": {"x": 1},
        }
        await publish(
            channel,
            queue_name,
            aio_pika.Message(
                json.dumps(structured).encode(), content_type="application/cloudevents+json"
            ),
        )
        await eventually(lambda: len(emit.events) == 3, what="3 events")
    plain, binary, struct = emit.events
    assert plain.attributes == {
        "specversion": "1.0",
        "id": "order-1",
        "type": "dev.knative.rabbitmq.event",
        "source": f"/apis/v1/namespaces/default/rabbitmqsources/orders#{queue_name}",
        "subject": "order-1",
        "datacontenttype": "application/json",
    }
    assert plain.data == b'{"n":1}'
    assert binary.attributes["type"] == "t.binary"
    assert binary.attributes["flag"] is True
    assert binary.attributes["count"] == 7
    assert binary.datacontenttype == "text/plain"
    assert binary.data == b"raw"
    assert struct.id == "s-1"
    assert struct.data == b'{"x":1}'
    queue = await channel.declare_queue(queue_name, passive=True)
    assert queue.declaration_result.message_count == 0  # all acknowledged


async def test_store_errors_ack_nothing_then_everything_arrives(
    amqp_url: str, rabbitmq_mgmt_url: str, channel: AbstractChannel, queue_name: str
) -> None:
    emit = RecordingEmit(failing=True)
    adapter = source(amqp_url, queue_name, parallelism=5)
    depth = RabbitmqQueueDepth(queue_name, management_url=rabbitmq_mgmt_url)
    try:
        async with running(adapter, emit):
            await eventually(lambda: adapter.health.state == "connected", what="connected")
            for i in range(30):
                await publish(channel, queue_name, aio_pika.Message(f"m{i}".encode()))
            await eventually(lambda: emit.failures >= 3, what="failing emits")

            async def all_still_queued() -> bool:  # nothing acknowledged, nothing lost
                counts = await depth.counts()
                return counts.ready + counts.unacknowledged == 30

            await eventually_async(all_still_queued, what="30 messages still in the queue")
            assert emit.events == []
            emit.failing = False
            await eventually(lambda: len(emit.payloads()) == 30, what="all 30 after recovery")
        assert adapter.health.failed >= 3
        assert adapter.health.emitted >= 30
        queue = await channel.declare_queue(queue_name, passive=True)
        assert queue.declaration_result.message_count == 0
    finally:
        await depth.close()


async def test_restart_mid_stream_loses_nothing(
    amqp_url: str, channel: AbstractChannel, queue_name: str
) -> None:
    emit = RecordingEmit(delay=0.01)
    adapter = source(amqp_url, queue_name, parallelism=10)
    persistent = aio_pika.DeliveryMode.PERSISTENT
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        for i in range(300):
            await publish(
                channel,
                queue_name,
                aio_pika.Message(f"a{i}".encode(), message_id=f"a{i}", delivery_mode=persistent),
            )
        await eventually(lambda: len(emit.events) >= 20, what="stream under way")
        await restart_server("rabbitmq")
        await eventually(
            lambda: adapter.health.state == "connected" and adapter.health.reconnects >= 1,
            timeout=60,
            what="reconnected",
        )
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            fresh = await connection.channel()
            for i in range(100):
                await publish(
                    fresh,
                    queue_name,
                    aio_pika.Message(
                        f"b{i}".encode(), message_id=f"b{i}", delivery_mode=persistent
                    ),
                )
            expected = {f"a{i}" for i in range(300)} | {f"b{i}" for i in range(100)}
            await eventually(lambda: expected <= emit.ids(), timeout=60, what="all 400 ids")


async def test_oversized_and_invalid_messages_are_dead_lettered(
    amqp_url: str, channel: AbstractChannel, queue_name: str
) -> None:
    dlx = await channel.declare_exchange(f"{queue_name}-dlx", aio_pika.ExchangeType.FANOUT)
    dlq = await channel.declare_queue(f"{queue_name}-dlq")
    await dlq.bind(dlx)
    queue = await channel.declare_queue(
        queue_name, durable=True, arguments={"x-dead-letter-exchange": dlx.name}
    )
    exchange = await channel.declare_exchange(
        f"{queue_name}-x", aio_pika.ExchangeType.TOPIC, durable=True
    )
    await queue.bind(exchange, routing_key="#")
    emit = RecordingEmit()
    adapter = source(
        amqp_url,
        queue_name,
        predeclared=True,
        annotations={"eventing.local/max-message-bytes": "100"},
    )
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        await publish(channel, queue_name, aio_pika.Message(b"x" * 101))
        await publish(
            channel,
            queue_name,
            aio_pika.Message(b"", headers={"ce-specversion": "1.0", "ce-type": "t"}),
        )  # no id, no source
        await publish(channel, queue_name, aio_pika.Message(b"ok", message_id="ok"))
        await eventually(
            lambda: emit.ids() == {"ok"} and adapter.health.refused == 2,
            what="one event, two refused",
        )

    async def dead_lettered() -> bool:
        declared = await channel.declare_queue(dlq.name, passive=True)
        return declared.declaration_result.message_count == 2

    await eventually_async(dead_lettered, what="two dead-lettered messages")
    assert "not a valid CloudEvent" in (adapter.health.last_error or "")


async def test_queue_depth_readings(
    amqp_url: str, rabbitmq_mgmt_url: str, channel: AbstractChannel, queue_name: str
) -> None:
    queue = await channel.declare_queue(queue_name, durable=True)
    await channel.declare_exchange(f"{queue_name}-x", aio_pika.ExchangeType.FANOUT)
    for i in range(7):
        await channel.default_exchange.publish(
            aio_pika.Message(f"{i}".encode()), routing_key=queue_name
        )
    http = RabbitmqQueueDepth(queue_name, management_url=rabbitmq_mgmt_url, activation_value=5)
    ready_only = RabbitmqQueueDepth(
        queue_name, management_url=rabbitmq_mgmt_url, exclude_unacknowledged=True
    )
    amqp = RabbitmqQueueDepth(queue_name, amqp_url=amqp_url)
    try:
        assert (await amqp.read()).value == 7

        async def management_sees(ready: int, unacknowledged: int) -> bool:
            counts = await http.counts()  # statistics are sampled once a second here
            return (counts.ready, counts.unacknowledged) == (ready, unacknowledged)

        await eventually_async(lambda: management_sees(7, 0), what="7 ready via management")
        sample = await http.read()
        assert sample.value == 7
        assert sample.active
        held = [await queue.get(no_ack=False) for _ in range(3)]  # unacknowledged
        assert (await amqp.read()).value == 4  # AMQP sees ready messages only
        await eventually_async(lambda: management_sees(4, 3), what="4 ready + 3 unacked")
        assert (await http.read()).value == 7
        assert (await ready_only.read()).value == 4
        assert (await ready_only.read()).active
        for message in held:
            await message.ack()
    finally:
        for probe in (http, ready_only, amqp):
            await probe.close()
