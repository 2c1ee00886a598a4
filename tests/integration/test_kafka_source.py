"""KafkaSource against a real Kafka (KRaft): mapping, commit-after-store under store
failures, a broker restart mid-stream, and consumer-lag readings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sources.kafka.adapter import MODEL, KafkaAdapter, build
from sources.kafka.lag import KafkaConsumerLag, LagPolicy
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


def source(bootstrap: str, topic: str, group: str, *, offset: str = "earliest") -> KafkaAdapter:
    return build(
        MODEL.model_validate(
            {
                "apiVersion": "sources.knative.dev/v1beta1",
                "kind": "KafkaSource",
                "metadata": {"name": "clicks"},
                "spec": {
                    "bootstrapServers": [bootstrap],
                    "topics": [topic],
                    "consumerGroup": group,
                    "initialOffset": offset,
                    "sink": BROKER_SINK,
                },
            }
        )
    )


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[Any]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A unique 3-partition topic, deleted after the test (over a fresh client: the test
    may have restarted the broker)."""
    name = unique("it-kafka")
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        await client.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    finally:
        await client.close()
    yield name
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        await client.delete_topics([name])
    finally:
        await client.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()


async def committed_total(admin: Any, group: str, topic: str) -> int:
    tps = [TopicPartition(topic, p) for p in range(3)]
    offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    return sum(max(meta.offset, 0) for meta in offsets.values())


async def test_records_become_events(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    emit = RecordingEmit()
    adapter = source(kafka_bootstrap, topic, unique("g"))
    await producer.send_and_wait(
        topic, b"plain", key=b"user-7", partition=1, headers=[("trace", b"abc")]
    )
    await producer.send_and_wait(
        topic,
        b'{"a":1}',
        partition=2,
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"b-1"),
            ("ce_type", b"t.binary"),
            ("ce_source", b"/app"),
            ("content-type", b"application/json"),
        ],
    )
    structured = {
        "specversion": "1.0",
        "id": "s-1",
        "type": "t.s",
        "source": "/app",
        "partitionkey": "explicit",
    }
    await producer.send_and_wait(
        topic,
        json.dumps(structured).encode(),
        key=b"k",
        partition=0,
        headers=[("content-type", b"application/cloudevents+json")],
    )
    async with running(adapter, emit):
        await eventually(lambda: len(emit.events) == 3, what="3 events")
    by_id = {e.id: e for e in emit.events}
    plain = by_id["partition:1/offset:0"]
    assert plain.attributes["source"] == (
        f"/apis/v1/namespaces/default/kafkasources/clicks#{topic}"
    )
    assert plain.attributes["type"] == "dev.knative.kafka.event"
    assert plain.attributes["subject"] == "partition:1#0"
    assert plain.attributes["key"] == plain.attributes["partitionkey"] == "user-7"
    assert plain.attributes["kafkaheadertrace"] == "abc"
    assert plain.data == b"plain"
    assert by_id["b-1"].datacontenttype == "application/json"
    assert by_id["b-1"].data == b'{"a":1}'
    assert by_id["s-1"].attributes["partitionkey"] == "explicit"


async def test_store_errors_commit_nothing_then_everything_arrives(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer, admin: Any
) -> None:
    group = unique("g")
    emit = RecordingEmit(failing=True)
    adapter = source(kafka_bootstrap, topic, group)
    for i in range(60):
        await producer.send(topic, f"m{i}".encode(), partition=i % 3)
    await producer.flush()
    async with running(adapter, emit):
        await eventually(lambda: emit.failures >= 3, what="failing emits")
        assert await committed_total(admin, group, topic) == 0  # nothing committed
        emit.failing = False
        await eventually(lambda: len(emit.payloads()) == 60, what="all 60 after recovery")

        async def all_committed() -> bool:
            return await committed_total(admin, group, topic) == 60

        await eventually_async(all_committed, what="offsets committed after the store")
    assert adapter.health.failed >= 3


async def test_restart_mid_stream_loses_nothing(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    emit = RecordingEmit(delay=0.02)
    adapter = source(kafka_bootstrap, topic, unique("g"))
    adapter.batch = 20
    for i in range(300):
        await producer.send(topic, f"a{i}".encode(), partition=i % 3)
    await producer.flush()
    async with running(adapter, emit):
        await eventually(lambda: len(emit.events) >= 20, what="stream under way")
        await restart_server("kafka")
        fresh = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await fresh.start()
        try:
            for i in range(100):
                await fresh.send(topic, f"b{i}".encode(), partition=i % 3)
            await fresh.flush()
        finally:
            await fresh.stop()
        expected = {f"a{i}".encode() for i in range(300)} | {f"b{i}".encode() for i in range(100)}
        await eventually(lambda: expected <= emit.payloads(), timeout=90, what="all 400")
        await eventually(lambda: adapter.health.state == "connected", what="connected")


async def test_consumer_lag_readings(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    group = unique("g")
    for i in range(12):  # 12 on partition 0, partitions 1 and 2 stay empty
        await producer.send(topic, f"{i}".encode(), partition=0)
    await producer.flush()
    earliest = KafkaConsumerLag(
        [kafka_bootstrap], group, [topic], LagPolicy(initial_offset="earliest", lag_threshold=5)
    )
    latest = KafkaConsumerLag([kafka_bootstrap], group, [topic], LagPolicy())
    try:
        lag = await earliest.lag()  # no commits yet
        assert lag.uncapped == 12
        assert lag.value == 12
        assert lag.active
        small = KafkaConsumerLag(
            [kafka_bootstrap], group, [topic], LagPolicy(initial_offset="earliest", lag_threshold=2)
        )
        try:
            assert (await small.read()).value == 6  # capped: 3 partitions * threshold 2
        finally:
            await small.close()
        sample = await latest.read()
        assert sample.value == 1
        assert sample.active
        emit = RecordingEmit()
        adapter = source(kafka_bootstrap, topic, group)
        async with running(adapter, emit):
            await eventually(lambda: len(emit.events) == 12, what="12 consumed")

            async def drained() -> bool:
                return (await earliest.read()).value == 0

            await eventually_async(drained, what="lag 0 after commits")
        for _ in range(4):
            await producer.send(topic, b"more", partition=1)
        await producer.flush()
        lag = await latest.lag()
        assert lag.value == 4
        assert lag.active
        assert sorted(lag.per_partition.values()) == [0, 0, 4]
    finally:
        await earliest.close()
        await latest.close()
