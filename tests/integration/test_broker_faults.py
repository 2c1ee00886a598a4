"""Faults and bad input for the Kafka and RabbitMQ broker classes, on the real
servers: a poison event on an unordered trigger and what a restart redelivers, the
server unreachable at start, the topic or queue deleted while running, and a record
on the broker's topic (or exchange) that is not a CloudEvent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from eventing.workloads.replica import free_port
from tests.integration.broker_rig import MATCH, SHAPES, Proxy, broker_manifests
from tests.integration.support import AMQP_URL, KAFKA_BOOTSTRAP, eventually, eventually_async
from tests.support.broker_classes import Created, cleanup
from tests.support.mesh import broker_url, post, run_system, send, settled
from tests.support.subscriber import Answer, Received, RecordingSubscriber

FAST = {"backoffDelay": "PT0.05S", "backoffPolicy": "linear", "jitter": 0}


def _created(kind: str, config: dict[str, str]) -> Created:
    created = Created()
    if kind == "kafka":
        created.kafka_topics += [config["topic"], config["topic"] + ".dlq"]
    else:
        created.rabbit_exchanges.append(config["exchange"])
    return created


def _with_config(text: str, **changes: str) -> str:
    docs = list(yaml.safe_load_all(text))
    docs[0]["data"].update(changes)
    return yaml.safe_dump_all(docs, sort_keys=False)


async def _ready(running: Any) -> bool:
    async with aiohttp.ClientSession() as http, http.get(running.admin_url + "/readyz") as r:
        return r.status == 200


async def test_unordered_poison_holds_only_its_own_offset_and_a_restart_redelivers_from_it(
    tmp_path: Path, subscriber: RecordingSubscriber, kafka_bootstrap: str
) -> None:
    """Unordered trigger, one partition, event 10 of 30 keeps failing: the other 29
    are delivered; the group commits up to the poison and no further (a commit past
    it would lose it on a crash); after a restart exactly the poison and the events
    after it come again, none before it."""
    text, config = broker_manifests("kafka", subscriber.url, partitions=1, retry=1000, **FAST)
    created = _created("kafka", config)
    ids = [f"ev-{i}" for i in range(30)]

    def refuse_poison(received: Received, n: int) -> Answer:
        poisoned = received.event is not None and received.event.id == "ev-10"
        return Answer(500 if poisoned else 202)

    subscriber.responder = refuse_poison
    try:
        async with run_system(tmp_path / "m", text) as running:
            sub = running.system.triggers["default/match"].subscription
            async with aiohttp.ClientSession() as http:
                for i in ids:
                    await send(http, running, i, MATCH)
            await subscriber.wait_for(
                lambda rs: {r.event.id for r in rs if r.event} >= set(ids), 60
            )
            await eventually_async(
                lambda: _lag_is(sub, 20), timeout=30, what="lag 20: committed up to the poison"
            )
        before = len(subscriber.received)
        subscriber.responder = lambda received, n: Answer(202)
        async with run_system(tmp_path / "m", text) as running:
            await subscriber.wait_for(
                lambda rs: {r.event.id for r in rs[before:] if r.event} >= set(ids[10:]), 60
            )
            await settled(running)
        again = {r.event.id for r in subscriber.received[before:] if r.event is not None}
        assert again == set(ids[10:])
    finally:
        await cleanup(created)


async def _lag_is(sub: Any, n: int) -> bool:
    return bool(await sub.backlog() == n)


@pytest.mark.parametrize(("kind", "workers"), SHAPES)
async def test_server_unreachable_at_start_answers_503_then_recovers_by_itself(
    kind: str,
    workers: int,
    tmp_path: Path,
    subscriber: RecordingSubscriber,
    kafka_bootstrap: str,
    amqp_url: str,
) -> None:
    """The 503 with Retry-After and the readiness hold in an ingress worker that
    produces to Kafka itself as in the main process."""
    port = free_port()
    if kind == "kafka":
        real = KAFKA_BOOTSTRAP.rsplit(":", 1)[1]
        address = {"bootstrap.servers": f"127.0.0.1:{port}"}
    else:
        real = AMQP_URL.rsplit(":", 1)[1].split("/")[0]
        address = {"url": AMQP_URL.replace(f":{real}", f":{port}")}
    text, config = broker_manifests(kind, subscriber.url)
    created = _created(kind, config)
    proxy = Proxy(port, ("127.0.0.1", int(real)))
    try:
        manifests = _with_config(text, **address)
        async with run_system(tmp_path / "m", manifests, ingress_workers=workers) as running:
            assert not await _ready(running)
            async with aiohttp.ClientSession() as http:
                headers = {
                    "ce-specversion": "1.0",
                    "ce-id": "early",
                    "ce-source": "/t",
                    "ce-type": MATCH,
                }
                async with http.post(broker_url(running), headers=headers) as response:
                    assert response.status == 503
                    assert int(response.headers["Retry-After"]) >= 1
                await proxy.start()
                await eventually_async(lambda: _ready(running), timeout=60, what="ready")
                await send(http, running, "late", MATCH)
            await subscriber.wait_for(lambda rs: any(r.event and r.event.id == "late" for r in rs))
            assert "early" not in subscriber.ids("/match")
    finally:
        await proxy.stop()
        await cleanup(created)


@pytest.mark.parametrize("kind", ["kafka", "rabbitmq"])
async def test_topic_or_queue_deleted_while_running_is_declared_again(
    kind: str, tmp_path: Path, subscriber: RecordingSubscriber, kafka_bootstrap: str, amqp_url: str
) -> None:
    """Somebody deletes the broker's topic (Kafka) or a trigger's queue (RabbitMQ):
    the class notices, declares it again by itself, and events accepted from then
    on are delivered. (What the deleted topic or queue held is gone with it.)"""
    text, config = broker_manifests(kind, subscriber.url, partitions=1)
    created = _created(kind, config)
    try:
        async with run_system(tmp_path / "m", text) as running:
            async with aiohttp.ClientSession() as http:
                await send(http, running, "before", MATCH)
                await subscriber.wait_for(lambda rs: "before" in subscriber.ids("/match"))
                if kind == "kafka":
                    await _delete_topic(config["topic"])
                else:
                    await _delete_queue(config["exchange"] + ".default.match")
                accepted: list[str] = []

                async def one_more() -> bool:
                    event_id = f"after-{len(accepted)}"
                    status, _ = await post(
                        http,
                        broker_url(running),
                        {
                            "ce-specversion": "1.0",
                            "ce-id": event_id,
                            "ce-source": "/t",
                            "ce-type": MATCH,
                        },
                    )
                    assert status in (202, 503), status
                    if status == 202:
                        accepted.append(event_id)
                    return len(accepted) >= 3

                await eventually_async(one_more, timeout=60, what="202 again")
            await eventually(
                lambda: set(accepted[-2:]) <= set(subscriber.ids("/match")),
                timeout=60,
                what="events accepted after the re-declare delivered",
            )
    finally:
        await cleanup(created)


async def _delete_topic(topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def _delete_queue(queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


@pytest.mark.parametrize("kind", ["kafka", "rabbitmq"])
async def test_a_record_that_is_not_a_cloudevent_is_dead_lettered_with_a_reason(
    kind: str, tmp_path: Path, subscriber: RecordingSubscriber, kafka_bootstrap: str, amqp_url: str
) -> None:
    text, config = broker_manifests(kind, subscriber.url)
    docs = list(yaml.safe_load_all(text))
    for doc in docs[2:]:  # the triggers: take everything, dead letters to dlq:
        doc["spec"]["filters"] = []
        doc["spec"]["delivery"] = {"deadLetterSink": {"uri": "dlq:"}}
    created = _created(kind, config)
    try:
        async with run_system(tmp_path / "m", yaml.safe_dump_all(docs)) as running:
            if kind == "kafka":
                await _produce_raw(config["topic"], b"not an event")
            else:
                await _publish_raw(config["exchange"], b"not an event")
            async with aiohttp.ClientSession() as http:

                async def listed() -> bool:
                    async with http.get(running.admin_url + "/v1/dlq") as response:
                        items = (await response.json())["items"]
                    return len(items) == 2  # one per trigger

                await eventually_async(listed, timeout=60, what="two dead letters")
                async with http.get(running.admin_url + "/v1/dlq") as response:
                    items = (await response.json())["items"]
                assert {i["trigger"] for i in items} == {"default/match", "default/other"}
                assert all("not a CloudEvent" in i["reason"] for i in items)
                async with http.get(f"{running.admin_url}/v1/dlq/{items[0]['id']}") as response:
                    shown = await response.json()
                assert shown["data"] == "not an event"
                await send(http, running, "fine", MATCH)
            await subscriber.wait_for(lambda rs: "fine" in subscriber.ids("/match"))
    finally:
        await cleanup(created)


async def _produce_raw(topic: str, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _publish_raw(exchange: str, body: bytes) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange)
        await target.publish(aio_pika.Message(body), routing_key="")
    finally:
        await connection.close()
