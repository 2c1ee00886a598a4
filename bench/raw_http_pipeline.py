"""The hand-written pipeline bench_brokers.py measures our broker classes against: the
smallest program a user would build from raw parts with the same guarantees, speaking
HTTP at both ends like the class does.

    python bench/raw_http_pipeline.py kafka PORT TOPIC SUBSCRIBER_URL
    python bench/raw_http_pipeline.py rabbitmq PORT QUEUE SUBSCRIBER_URL

One process (uvloop, our default loop too) holding:

- an aiohttp POST handler that takes a binary-mode CloudEvent (the four required
  ``ce-`` headers, else 400), produces it to the server (Kafka: aiokafka with
  ``acks=all`` and idempotence, the ``ce-`` headers as ``ce_`` record headers;
  RabbitMQ: aio-pika, a persistent message on a channel with publisher confirms to a
  durable quorum queue) and answers 202 only after the server's acknowledgement;
- a consumer that POSTs each record to ``SUBSCRIBER_URL/events`` with one keep-alive
  aiohttp client session and marks it done only after a 2xx (Kafka: a group consumer
  reads a batch, POSTs its records concurrently, commits the batch's offsets after
  every 2xx; RabbitMQ: prefetch 200, ack after the 2xx). A non-2xx is tried again
  (at-least-once; the bench's subscriber always answers 202).

What it leaves out that the class does: filters, retries with backoff, dead letters,
replies, TTL, ordering modes, several triggers, contiguous-prefix commits, backlog
reads, IPC between an ingress worker and the main process, metrics and status. The
Kafka topic (4 partitions) or the RabbitMQ queue is created here and deleted by the
bench. Several processes given the same name share the work (one consumer group; or
several consumers on one queue). Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import aiohttp
from aiohttp import web

KAFKA = "127.0.0.1:9192"
AMQP = "amqp://guest:guest@127.0.0.1:5682/"
REQUIRED = ("ce-specversion", "ce-id", "ce-source", "ce-type")
PARTITIONS = 4
BATCH = 200  # records read (Kafka) or unacked (RabbitMQ prefetch) at a time


def binary_headers(request: web.Request) -> list[tuple[str, str]] | None:
    """The event's ``ce-`` headers and content type, or None when one required is
    missing."""
    headers = [(k.lower(), v) for k, v in request.headers.items() if k[:3].lower() == "ce-"]
    names = {k for k, _ in headers}
    if any(r not in names for r in REQUIRED):
        return None
    content_type = request.headers.get("Content-Type")
    if content_type is not None:
        headers.append(("content-type", content_type))
    return headers


async def post(session: aiohttp.ClientSession, url: str, headers: Any, body: bytes) -> None:
    """POST until a 2xx (at-least-once: the caller marks the record done after this)."""
    while True:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            if 200 <= response.status < 300:
                return
        await asyncio.sleep(0.1)


async def kafka(port: int, topic: str, sink: str, bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    except TopicAlreadyExistsError:
        pass  # a second process of the same pipeline
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()

    async def ingress(request: web.Request) -> web.Response:
        headers = binary_headers(request)
        if headers is None:
            return web.Response(status=400, text="not a binary-mode CloudEvent")
        body = await request.read()
        record = [(k.replace("ce-", "ce_", 1), v.encode()) for k, v in headers]
        await producer.send_and_wait(topic, body, headers=record)
        return web.Response(status=202)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    session = aiohttp.ClientSession()

    async def consume() -> None:
        url = sink + "/events"
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            if not batch:
                continue
            await asyncio.gather(
                *(
                    post(
                        session,
                        url,
                        [(k.replace("ce_", "ce-", 1), v.decode()) for k, v in r.headers],
                        r.value,
                    )
                    for records in batch.values()
                    for r in records
                )
            )
            await consumer.commit()  # the positions after this batch: all delivered

    reader = asyncio.create_task(consume(), name="raw kafka consume")
    try:
        await serve(port, ingress)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await session.close()
        await consumer.stop()
        await producer.stop()


async def rabbitmq(port: int, queue_name: str, sink: str, url: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    publishing = await connection.channel(publisher_confirms=True)
    await publishing.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
    exchange = publishing.default_exchange

    async def ingress(request: web.Request) -> web.Response:
        headers = binary_headers(request)
        if headers is None:
            return web.Response(status=400, text="not a binary-mode CloudEvent")
        body = await request.read()
        message = aio_pika.Message(body, headers=dict(headers), delivery_mode=2)
        await exchange.publish(message, routing_key=queue_name)  # returns after the confirm
        return web.Response(status=202)

    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=BATCH)
    session = aiohttp.ClientSession()
    target = sink + "/events"

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        headers = {k: str(v) for k, v in (message.headers or {}).items()}
        await post(session, target, headers, message.body)
        await message.ack()

    queue = await consuming.get_queue(queue_name)
    await queue.consume(on_message)
    try:
        await serve(port, ingress)
    finally:
        await session.close()
        await connection.close()


async def ready(_: web.Request) -> web.Response:
    return web.Response(text="ok")  # what the bench waits for


async def serve(port: int, handler: Any) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    app.router.add_get("/", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    kind, port, name, sink, *server = sys.argv[1:]
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if kind == "kafka":
        asyncio.run(kafka(int(port), name, sink, server[0] if server else KAFKA))
    else:
        asyncio.run(rabbitmq(int(port), name, sink, server[0] if server else AMQP))


if __name__ == "__main__":
    main()
