"""A Kafka-class broker behind ingress workers: the worker produces the HTTP events to
the broker's topic itself (brokers/kafka/ingress.py), and the main process only
consumes and delivers. What must still hold: 202 only after Kafka acknowledged,
delivery to matching triggers only, the main process's tap (dashboard counts) and
filter drop counts, and a broker that deduplicates ingress events keeping its one
window in the main process. (No loss with ``kill -9`` and a Kafka restart with
workers: tests/integration/test_broker_processes.py; unreachable at start:
tests/integration/test_broker_faults.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from brokers.kafka.config import KafkaSettings
from brokers.kafka.ingress import IngressProducer
from eventing.errors import StoreError
from eventing.events import Event
from tests.integration.broker_rig import MATCH, OTHER, SKIPPED, broker_manifests
from tests.integration.support import eventually_async, unique
from tests.support.broker_classes import Created, cleanup
from tests.support.mesh import run_system, send
from tests.support.subscriber import RecordingSubscriber


async def _get(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        if response.content_type == "application/json":
            return await response.json()
        return await response.text()


async def test_the_worker_produces_and_the_main_process_still_sees_every_event(
    tmp_path: Path, subscriber: RecordingSubscriber, kafka_bootstrap: str
) -> None:
    text, config = broker_manifests("kafka", subscriber.url)
    created = Created(kafka_topics=[config["topic"], config["topic"] + ".dlq"])
    sent = {MATCH: [f"m-{i}" for i in range(20)], OTHER: [f"o-{i}" for i in range(5)]}
    sent[SKIPPED] = [f"s-{i}" for i in range(5)]
    try:
        async with run_system(tmp_path / "m", text, ingress_workers=1) as running:
            assert running.workers is not None
            assert [spec["key"] for spec in running.workers.direct] == ["default/default"]
            async with aiohttp.ClientSession() as http:
                for event_type, ids in sent.items():
                    for i in ids:
                        await send(http, running, i, event_type)
            await subscriber.wait_for(
                lambda rs: (
                    set(subscriber.ids("/match")) >= set(sent[MATCH])
                    and set(subscriber.ids("/other")) >= set(sent[OTHER])
                ),
                60,
            )
            assert set(subscriber.ids("/match")) == set(sent[MATCH])
            assert set(subscriber.ids("/other")) == set(sent[OTHER])

            async def counted() -> bool:
                state = await _get(running.admin_url + "/v1/ui/state")
                samples = state["samples"]
                entered = samples[-1]["brokers"]["default/default"]["entered"] if samples else 0
                metrics = await _get(running.admin_url + "/metrics")
                # match drops the 5 other and 5 skipped events, other the 20 + 5
                return bool(
                    entered == 30
                    and 'trigger="default/match"} 10.0' in metrics.replace(',reason="filtered"', "")
                    and 'trigger="default/other"} 25.0' in metrics.replace(',reason="filtered"', "")
                )

            await eventually_async(counted, timeout=30, what="the tap and drops counted")
    finally:
        await cleanup(created)


async def test_a_broker_deduplicating_ingress_events_publishes_through_the_main_process(
    tmp_path: Path, subscriber: RecordingSubscriber, kafka_bootstrap: str
) -> None:
    text, config = broker_manifests("kafka", subscriber.url)
    docs = list(yaml.safe_load_all(text))
    docs[1]["metadata"]["annotations"]["eventing.local/dedup-ingress"] = "true"
    created = Created(kafka_topics=[config["topic"], config["topic"] + ".dlq"])
    try:
        manifests = yaml.safe_dump_all(docs, sort_keys=False)
        async with run_system(tmp_path / "m", manifests, ingress_workers=1) as running:
            assert running.workers is not None
            assert running.workers.direct == []  # one dedup window: the main process's
            async with aiohttp.ClientSession() as http:
                for _ in range(3):
                    await send(http, running, "same", MATCH)
                await send(http, running, "after", MATCH)
            await subscriber.wait_for(lambda rs: "after" in subscriber.ids("/match"), 60)
            assert sorted(subscriber.ids("/match")) == ["after", "same"]
    finally:
        await cleanup(created)


async def test_the_worker_side_producer_answers_each_request_after_its_batch_is_acknowledged(
    kafka_bootstrap: str,
) -> None:
    """300 requests of one event each, all in flight at once, key-less ones batched
    on the sticky partition and keyed ones on their key's: every request is answered
    once, and every answered event is on the topic (a key on one partition)."""
    topic = unique("ingress-producer")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 4, 1)])
    settings = KafkaSettings((kafka_bootstrap,), topic, topic + ".dlq", 4, 1, topic + "-", 500)
    producer = IngressProducer("default/default", settings, "test-ingress", 30.0)
    answers: list[tuple[str, StoreError | None]] = []
    all_answered = asyncio.Event()
    events = []
    for i in range(300):
        attributes = {"specversion": "1.0", "id": f"e{i}", "source": "/t", "type": "t"}
        if i % 10 == 0:
            attributes["partitionkey"] = f"k{i % 3}"
        events.append(Event(dict(attributes), b"x" * 200))
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    try:
        await producer.start()
        assert producer.ready
        for event in events:  # one request per event, all in flight at once

            def answered(error: StoreError | None, ident: str = event.id) -> None:
                answers.append((ident, error))
                if len(answers) >= len(events):
                    all_answered.set()

            producer.publish_soon([event], answered)
        async with asyncio.timeout(30):
            await all_answered.wait()
        assert sorted(i for i, _ in answers) == sorted(e.id for e in events)  # each once
        assert {error for _, error in answers} == {None}
        await consumer.start()
        seen: dict[str, int] = {}
        async with asyncio.timeout(30):
            while len(seen) < len(events):
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for record in records:
                        seen[dict(record.headers)["ce_id"].decode()] = tp.partition
        assert set(seen) == {e.id for e in events}
        for key in ("k0", "k1", "k2"):
            ids = [e.id for e in events if e.attributes.get("partitionkey") == key]
            assert len({seen[i] for i in ids}) == 1
    finally:
        await consumer.stop()
        await producer.close()
        await admin.delete_topics([topic])
        await admin.close()
