"""A RabbitMQ message stored by the durable broker but not acknowledged upstream
before ``kill -9`` is redelivered by RabbitMQ after the restart, and the broker
stores it once: the subscriber receives it once, and it is counted as a
``duplicate`` drop. A different ``message_id`` with the same body is not
deduplicated.

The window between "stored" and "acknowledged" is made deterministic with a TCP
proxy between ``eventing run`` and RabbitMQ that, on request, stops forwarding what
the client sends (its ack) while still forwarding what the server sends (the
delivery): the subscriber receiving the event proves it was stored, and RabbitMQ
never saw the ack when the process is killed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiohttp
import pytest

from tests.integration.broker_rig import Proxy
from tests.integration.e2e_support import (
    declare_rabbitmq,
    delete_rabbitmq,
    exchange_of,
    manifests,
    rabbitmq_source,
    source_status,
    write_manifests,
)
from tests.integration.support import eventually_async, unique
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

pytestmark = pytest.mark.integration

NAME = "rabbitmqsource/default/feed"


async def publish(url: str, queue: str, message_id: str, body: bytes) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_of(queue))
        await exchange.publish(
            aio_pika.Message(
                body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            routing_key="load",
        )


async def queue_depth(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def duplicate_drops(admin_url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{admin_url}/v1/status") as r:
        status = await r.json()
    (broker,) = status["brokers"]
    return int(broker["dropped"].get("*:duplicate", 0))


async def backlog_empty(admin_url: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"{admin_url}/v1/status") as r:
        status = await r.json()
    return all(t["backlog"] == 0 for t in status["triggers"])


async def test_a_message_redelivered_after_kill_9_is_delivered_once(
    tmp_path: Path, subscriber: RecordingSubscriber, amqp_url: str
) -> None:
    queue = unique("dedup-rmq")
    await declare_rabbitmq(amqp_url, queue)
    parts = urlsplit(amqp_url)
    proxy = Proxy(0, (parts.hostname or "127.0.0.1", parts.port or 5672))
    await proxy.start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    via_proxy = urlunsplit(parts._replace(netloc=netloc))
    source = rabbitmq_source("feed", via_proxy, queue, parallelism=1)
    directory = write_manifests(tmp_path / "manifests", manifests(subscriber.url, source))
    proc = EventingProcess(directory, tmp_path / "data")
    try:
        await proc.start()

        async def connected() -> bool:
            return bool((await source_status(proc.admin_url, NAME))["state"] == "connected")

        await eventually_async(connected, what="source connected")
        proxy.hold = True  # from now on RabbitMQ hears nothing from eventing
        await publish(amqp_url, queue, "order-1", b'{"order": 1}')
        await subscriber.wait_count(1)  # stored (and delivered), never acknowledged
        # The delivery's own ack committed, so the restart does not redeliver it from
        # the backlog (at-least-once would): a second copy could only be a dedup miss.
        await eventually_async(lambda: backlog_empty(proc.admin_url), what="backlog empty")
        await proc.kill()
        proxy.hold = False

        async def requeued() -> bool:
            return await queue_depth(amqp_url, queue) == 1

        await eventually_async(requeued, what="RabbitMQ requeued the unacknowledged message")
        await proc.start()

        async def duplicate_acked() -> bool:
            drops = await duplicate_drops(proc.admin_url)
            return drops == 1 and await queue_depth(amqp_url, queue) == 0

        await eventually_async(duplicate_acked, what="the redelivery dropped and acked")
        await publish(amqp_url, queue, "order-2", b'{"order": 1}')  # same body, new id
        await subscriber.wait_count(2)
        assert sorted(e.id for e in subscriber.events()) == ["order-1", "order-2"]
        assert await duplicate_drops(proc.admin_url) == 1
    finally:
        if proc.proc is not None and proc.proc.returncode is None:
            code = await proc.terminate(60)
            assert code == 0, "\n".join(proc.output[-30:])
        await proxy.stop()
        with contextlib.suppress(Exception):
            await delete_rabbitmq(amqp_url, queue)
