"""The Kafka class's produce path on the real server: many concurrent publishes of
key-less records (formed into shared batches, several of them full because the batch
size is small), keyed records (one by one on their key's partition) and records larger
than a batch (a batch of their own) are all acknowledged, land exactly once each, and a key's
records stay in one partition in publish order."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer

from brokers.kafka.broker import KafkaBroker
from brokers.kafka.config import KafkaSettings
from eventing.events import AttributeValue, Event
from tests.integration.support import unique

pytestmark = pytest.mark.integration

PUBLISHERS = 12
PUBLISHES = 15


def _event(ident: str, data: bytes, key: str | None) -> Event:
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": ident,
        "source": "/t",
        "type": "t",
    }
    if key is not None:
        attributes["partitionkey"] = key
    return Event(attributes, data)


async def test_concurrent_publishes_land_exactly_once(kafka_bootstrap: str) -> None:
    topic = unique("batches")
    settings = KafkaSettings(
        bootstrap_servers=(kafka_bootstrap,),
        topic=topic,
        dlq_topic=topic + ".dlq",
        partitions=4,
        replication_factor=1,
        group_prefix=topic + "-",
        buffer=500,
        batch_size=2048,  # a few 300-byte records fill a batch; 3 KiB fits none
    )
    broker = KafkaBroker("default/default", "Kafka", settings, "test")
    await broker.open()
    sent: list[Event] = []

    async def publisher(p: int) -> None:
        for n in range(PUBLISHES):
            events = [_event(f"{p}-{n}-small-{i}", b"s" * 300, None) for i in range(3)] + [
                _event(f"{p}-{n}-keyed", b"k" * 100, f"key{p % 3}")
            ]
            if n % 5 == 0:
                events.append(_event(f"{p}-{n}-large", b"L" * 3072, None))
            await broker.publish(events)
            sent.extend(events)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    try:
        await asyncio.gather(*(publisher(p) for p in range(PUBLISHERS)))
        await consumer.start()
        seen: list[tuple[int, str]] = []
        async with asyncio.timeout(60):
            while len(seen) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        headers = dict(record.headers)
                        seen.append((tp.partition, headers["ce_id"].decode()))
        ids = [i for _, i in seen]
        assert sorted(ids) == sorted(e.id for e in sent)  # every one, none twice
        by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for partition, ident in seen:
            if ident.endswith("keyed"):
                by_key[f"key{int(ident.split('-')[0]) % 3}"].append((partition, ident))
        for records in by_key.values():
            assert len({partition for partition, _ in records}) == 1
            for p in range(PUBLISHERS):
                mine = [int(i.split("-")[1]) for _, i in records if i.startswith(f"{p}-")]
                assert mine == sorted(mine)  # one publisher's records of a key, in order
    finally:
        await consumer.stop()
        if broker.admin is not None:
            await broker.admin.delete_topics([topic, topic + ".dlq"])
        await broker.close()
