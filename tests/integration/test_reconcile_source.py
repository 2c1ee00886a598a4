"""A RabbitmqSource changed and then deleted while messages flow (live reload): the
adapter stops and starts again, and every message published reaches the trigger (what
the old adapter had not acknowledged comes again); once deleted, messages stay in the
queue."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import aio_pika
import pytest
import yaml
from aio_pika.abc import FieldValue

from eventing.app.runtime import Running
from tests.conftest import SystemFactory
from tests.integration.support import unique
from tests.support.mesh import broker_doc, manifests, trigger_doc, wait_until
from tests.support.subscriber import RecordingSubscriber

pytestmark = pytest.mark.integration


def source_doc(url: str, queue: str, parallelism: int) -> dict[str, object]:
    return {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "RabbitmqSource",
        "metadata": {"name": "orders", "annotations": {"eventing.local/url": url}},
        "spec": {
            "rabbitmqResourcesConfig": {
                "queueName": queue,
                "exchangeName": f"{queue}-x",
                "parallelism": parallelism,
            },
            "sink": {
                "ref": {
                    "apiVersion": "eventing.knative.dev/v1",
                    "kind": "Broker",
                    "name": "default",
                }
            },
        },
    }


def save(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def connected(running: Running) -> bool:
    return any(s.health.state == "connected" for s in running.sources)


async def test_a_source_changed_while_running_loses_nothing(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path, amqp_url: str
) -> None:
    queue = unique("live-src")
    base = [broker_doc(), trigger_doc("all", f"{subscriber.url}/all")]
    running = await system(manifests(*base, source_doc(amqp_url, queue, 5)), watch=True)
    path = tmp_path / "manifests0" / "system.yaml"
    assert running.reconciler is not None
    connection = await aio_pika.connect(amqp_url)
    sent: list[str] = []
    try:
        channel = await connection.channel()
        await wait_until(lambda: connected(running), what="the source connected")
        exchange = await channel.get_exchange(f"{queue}-x")

        async def publish(n: int) -> None:
            headers: dict[str, FieldValue] = {
                "ce-specversion": "1.0",
                "ce-id": f"m{n}",
                "ce-type": "t",
                "ce-source": "/live",
            }
            await exchange.publish(aio_pika.Message(b"{}", headers=headers), routing_key="k")
            sent.append(f"m{n}")

        for n in range(100):
            await publish(n)
        before = running.reconciler.applied
        save(path, yaml.safe_dump_all([*base, source_doc(amqp_url, queue, 3)], sort_keys=False))
        for n in range(100, 200):  # while the adapter is replaced
            await publish(n)
        await wait_until(lambda: running.reconciler is not None
                         and running.reconciler.applied > before)  # fmt: skip
        await wait_until(lambda: connected(running), what="the new adapter connected")
        for n in range(200, 300):
            await publish(n)
        await subscriber.wait_for(lambda rs: set(sent) <= set(subscriber.ids("/all")), 60)

        # Deleted: the adapter stops; what is published now stays in the queue.
        before = running.reconciler.applied
        save(path, manifests(*base))
        await wait_until(lambda: running.reconciler is not None
                         and running.reconciler.applied > before)  # fmt: skip
        assert not running.sources
        for n in range(300, 310):
            await publish(n)
        probe = await connection.channel()
        declared = await probe.declare_queue(queue, passive=True)
        assert declared.declaration_result.message_count == 10
        assert not {f"m{n}" for n in range(300, 310)} & set(subscriber.ids("/all"))
    finally:
        with contextlib.suppress(Exception):
            cleanup = await connection.channel()
            await cleanup.queue_delete(queue)
            await cleanup.exchange_delete(f"{queue}-x")
        await asyncio.wait_for(connection.close(), 10)
