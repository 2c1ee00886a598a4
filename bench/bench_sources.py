"""Events per second through the RabbitMQ and Kafka sources into a recording ``emit``,
next to the raw consume rate of aio-pika / aiokafka alone on the same server in the
same run (the baseline), with the ratio source / raw.

Run against the servers of ``scripts/servers``::

    scripts/servers up rabbitmq kafka   # or: scripts/servers up
    .venv/bin/python bench/bench_sources.py [--messages 20000] [--rounds 3]

Both sides do the same work per message: receive it and acknowledge only after
"storing" it (ack after the batch for RabbitMQ with prefetch 100; commit of the
batch's offsets for Kafka). The source also decodes every message into an ``Event``
(binding, validation, id). The recording ``emit`` only counts, so the numbers are the
source's own cost; the full broker -> trigger -> subscriber path is measured elsewhere.
The best of ``--rounds`` is reported for each cell.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eventing.events import Event
from sources import kafka, rabbitmq
from sources.base import Source

AMQP = os.environ.get("EVENTING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5682/")
KAFKA = os.environ.get("EVENTING_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9192")
SINK = {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}
PAYLOAD = b'{"order": 12345, "status": "paid", "amount": 99.5}'
PREFETCH = 100


class CountingEmit:
    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done = asyncio.Event()

    async def __call__(self, events: Sequence[Event], /) -> None:
        self.count += len(events)
        if self.count >= self.target:
            self.done.set()


async def timed_source(source: Source, n: int) -> float:
    emit = CountingEmit(n)
    task = asyncio.create_task(source.run(emit), name=f"bench:{source.name}")
    start = time.perf_counter()
    try:
        await asyncio.wait_for(emit.done.wait(), 300)
        return n / (time.perf_counter() - start)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- RabbitMQ -------------------------------------------------------------------------


async def fill_queue(queue: str, n: int) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(
            f"{queue}-x", aio_pika.ExchangeType.TOPIC, durable=True
        )
        declared = await channel.declare_queue(queue, durable=True)
        await declared.bind(exchange, routing_key="#")
        for i in range(n):
            await exchange.publish(aio_pika.Message(PAYLOAD, message_id=str(i)), "orders.paid")
        for _ in range(6000):  # published without confirms: wait until all are queued
            declared = await channel.declare_queue(queue, passive=True)
            if (declared.declaration_result.message_count or 0) >= n:
                break
            await asyncio.sleep(0.05)


async def drop_queue(queue: str) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(f"{queue}-x")


async def rabbit_raw(queue: str, n: int) -> float:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            seen += 1
            await message.ack()
            if seen >= n:
                done.set()

        start = time.perf_counter()
        tag = await declared.consume(on_message)
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
        await declared.cancel(tag)
        return n / elapsed


async def rabbit_source(queue: str, n: int) -> float:
    resource = rabbitmq.MODEL.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1alpha1",
            "kind": "RabbitmqSource",
            "metadata": {"name": "bench", "annotations": {"eventing.local/url": AMQP}},
            "spec": {
                "rabbitmqResourcesConfig": {
                    "queueName": queue,
                    "exchangeName": f"{queue}-x",
                    "parallelism": PREFETCH,
                },
                "sink": SINK,
            },
        }
    )
    return await timed_source(rabbitmq.build(resource), n)


# --- Kafka ----------------------------------------------------------------------------


async def fill_topic(topic: str, n: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, linger_ms=5)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, PAYLOAD, key=str(i % 50).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def drop_topic(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def kafka_raw(topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA,
        group_id=f"raw-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=kafka.BATCH,
    )
    await consumer.start()
    try:
        seen, start = 0, time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=kafka.BATCH)
            offsets = {}
            for tp, records in batches.items():
                seen += len(records)
                offsets[tp] = records[-1].offset + 1
            if offsets:
                await consumer.commit(offsets)
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def kafka_source(topic: str, n: int) -> float:
    resource = kafka.MODEL.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1beta1",
            "kind": "KafkaSource",
            "metadata": {"name": "bench"},
            "spec": {
                "bootstrapServers": [KAFKA],
                "topics": [topic],
                "consumerGroup": f"src-{topic}",
                "initialOffset": "earliest",
                "sink": SINK,
            },
        }
    )
    return await timed_source(kafka.build(resource), n)


# --- driver ---------------------------------------------------------------------------

Measure = Callable[[str, int], Awaitable[float]]
Fill = Callable[[str, int], Awaitable[None]]
Drop = Callable[[str], Awaitable[None]]


async def best(n: int, rounds: int, fill: Fill, drop: Drop, measure: Measure) -> float:
    results = []
    for _ in range(rounds):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        await fill(name, n)
        try:
            results.append(await measure(name, n))
        finally:
            await drop(name)
    return max(results)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, rounds = args.messages, args.rounds
    rows = [
        (
            "RabbitMQ",
            await best(n, rounds, fill_queue, drop_queue, rabbit_raw),
            await best(n, rounds, fill_queue, drop_queue, rabbit_source),
        ),
        (
            "Kafka",
            await best(n, rounds, fill_topic, drop_topic, kafka_raw),
            await best(n, rounds, fill_topic, drop_topic, kafka_source),
        ),
    ]
    print(f"{n} messages of {len(PAYLOAD)} bytes, best of {rounds} rounds\n")
    print(f"{'server':<10} {'raw client ev/s':>16} {'source ev/s':>13} {'source/raw':>11}")
    for server, raw, source in rows:
        print(f"{server:<10} {raw:>16,.0f} {source:>13,.0f} {source / raw:>11.2f}")


if __name__ == "__main__":
    asyncio.run(main())
