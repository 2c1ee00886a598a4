"""A Sequence on a distributed broker class: its internal brokers are Kafka (or
RabbitMQ) brokers through the flow's class annotation and
``eventing.local/broker-config``, and each step's reply feeds the next, end to end
against a recording subscriber on the real server."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import SystemFactory
from tests.integration.support import AMQP_URL, KAFKA_BOOTSTRAP, unique
from tests.support.broker_classes import Created, cleanup
from tests.support.flow_steps import transform
from tests.support.subscriber import RecordingSubscriber


@pytest.mark.parametrize("kind", ["kafka", "rabbitmq"])
async def test_sequence_on_a_server_backed_class(
    kind: str, system: SystemFactory, subscriber: RecordingSubscriber, request: Any
) -> None:
    request.getfixturevalue("kafka_bootstrap" if kind == "kafka" else "amqp_url")
    subscriber.responder = transform
    name = unique("seq")
    created = Created()
    if kind == "kafka":
        data = {
            "bootstrap.servers": KAFKA_BOOTSTRAP,
            "default.topic.partitions": "1",
            "consumer.group.prefix": name + "-",
        }
        cls = "Kafka"
        for broker in (f"{name}-kn-sequence-0", f"{name}-kn-sequence-1", f"{name}-kn-reply"):
            topic = f"knative-broker-default-{broker}"
            created.kafka_topics += [topic, topic + ".dlq"]
    else:
        data = {"url": AMQP_URL}
        cls = "RabbitMQBroker"
        for broker in (f"{name}-kn-sequence-0", f"{name}-kn-sequence-1", f"{name}-kn-reply"):
            created.rabbit_exchanges.append(f"eventing.default.{broker}")
            created.rabbit_queue_prefixes.append(f"eventing.default.{broker}.")
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data},
        {
            "apiVersion": "flows.knative.dev/v1",
            "kind": "Sequence",
            "metadata": {
                "name": name,
                "annotations": {
                    "eventing.knative.dev/broker.class": cls,
                    "eventing.local/broker-config": "cfg",
                },
            },
            "spec": {
                "steps": [
                    {"uri": f"{subscriber.url}/step/built"},
                    {"uri": f"{subscriber.url}/step/tested"},
                ],
                "reply": {"uri": f"{subscriber.url}/final"},
            },
        },
    ]
    try:
        running = await system(yaml.safe_dump_all(docs, sort_keys=False))
        classes = {b.broker_class for b in running.system.brokers.values()}
        assert classes == {cls}
        headers = {"ce-specversion": "1.0", "ce-source": "/t", "ce-type": "push"}
        async with aiohttp.ClientSession() as http:
            for i in range(3):
                async with http.post(
                    f"{running.ingress_url}/default/{name}-kn-sequence-0",
                    headers={**headers, "ce-id": f"p{i}"},
                ) as r:
                    assert r.status == 202, await r.text()
        final = await subscriber.wait_count(3, "/final", timeout=60)
        assert sorted(e.id for e in final) == [
            "p0-built-tested",
            "p1-built-tested",
            "p2-built-tested",
        ]
        assert {e.type for e in final} == {"push.built.tested"}
    finally:
        await cleanup(created)
