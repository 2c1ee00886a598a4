"""Several ``eventing run`` processes on one Kafka- or RabbitMQ-class broker lose
nothing when one of them is killed mid-stream.

Two processes get the same manifests (one broker, triggers ``match`` and ``other``
with exact type filters) and each its own data dir. A load posts to both ingresses
all the time; one process is ``kill -9``-ed and restarted three times while it runs.
Then every event that got a 202 must reach each matching trigger at least once, and
no trigger may receive an event its filter rejects (the id sets are compared).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.broker_rig import (
    MATCH,
    OTHER,
    Load,
    admin_get,
    broker_manifests,
    ready,
    write,
)
from tests.integration.support import eventually, eventually_async, restart_server
from tests.support.broker_classes import Created, cleanup
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

KILLS = 3


@pytest.mark.parametrize("kind", ["kafka", "rabbitmq"])
async def test_kill_9_of_one_process_loses_nothing(
    kind: str,
    tmp_path: Path,
    subscriber: RecordingSubscriber,
    kafka_bootstrap: str,
    amqp_url: str,
) -> None:
    text, config = broker_manifests(kind, subscriber.url)
    manifests = write(tmp_path / "manifests", text)
    created = Created()
    if kind == "kafka":
        created.kafka_topics += [config["topic"], config["topic"] + ".dlq"]
    else:
        created.rabbit_exchanges.append(config["exchange"])
    a = EventingProcess(manifests, tmp_path / "a", "--ingress-workers", "0")
    b = EventingProcess(manifests, tmp_path / "b", "--ingress-workers", "0")
    load = Load([lambda: a.url() if a.brokers else None, lambda: b.url() if b.brokers else None])
    try:
        await a.start()
        await b.start()
        ids = {(await admin_get(p.admin_url, "/v1/status"))["process"] for p in (a, b)}
        assert len(ids) == 2  # a stable id per process, different for each
        load.start()
        await load.wait_accepted(100)
        for round_ in range(KILLS):
            await a.kill()
            a.brokers.clear()
            await load.wait_accepted(len(load.accepted) + 50)
            await a.start()
            await eventually_async(lambda: ready(a.admin_url), what="a ready again")
            await load.wait_accepted(len(load.accepted) + 100)
            assert round_ < KILLS
        await load.stop()
        want = {
            "match": {i for i, t in load.accepted.items() if t == MATCH},
            "other": {i for i, t in load.accepted.items() if t == OTHER},
        }

        def delivered(path: str) -> set[str]:
            return set(subscriber.ids(path))

        await eventually(
            lambda: want["match"] <= delivered("/match") and want["other"] <= delivered("/other"),
            timeout=180,
            what="every accepted event delivered to each matching trigger",
        )
        assert not delivered("/match") & want["other"]
        assert not delivered("/other") & want["match"]
        assert all(i.startswith("ev-") for i in delivered("/match") | delivered("/other"))
        metrics = await _metrics(b.admin_url)
        assert 'eventing_process_info{process="' in metrics
    finally:
        await load.stop()
        for p in (a, b):
            if p.proc is not None and p.proc.returncode is None:
                await p.terminate(30)
        await cleanup(created)


async def _metrics(admin_url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(admin_url + "/metrics") as response:
        return await response.text()


@pytest.mark.parametrize("kind", ["kafka", "rabbitmq"])
async def test_server_restart_mid_stream_loses_nothing(
    kind: str,
    tmp_path: Path,
    subscriber: RecordingSubscriber,
    kafka_bootstrap: str,
    amqp_url: str,
) -> None:
    """The Kafka or RabbitMQ server itself restarts under load (``scripts/servers
    restart``; the shared test server, so this runs last): both processes answer 503
    meanwhile, recover by themselves, and every 202'd event is delivered."""
    text, config = broker_manifests(kind, subscriber.url)
    manifests = write(tmp_path / "manifests", text)
    created = Created()
    if kind == "kafka":
        created.kafka_topics += [config["topic"], config["topic"] + ".dlq"]
    else:
        created.rabbit_exchanges.append(config["exchange"])
    a = EventingProcess(manifests, tmp_path / "a", "--ingress-workers", "0")
    b = EventingProcess(manifests, tmp_path / "b", "--ingress-workers", "0")
    load = Load([a.url, b.url])
    try:
        await a.start()
        await b.start()
        load.start()
        await load.wait_accepted(100)
        await restart_server(kind)
        for admin_url in (a.admin_url, b.admin_url):

            async def up(url: str = admin_url) -> bool:
                return await ready(url)

            await eventually_async(up, timeout=120, what="ready after the restart")
        await load.wait_accepted(len(load.accepted) + 100, timeout=120)
        await load.stop()
        want = {
            "/match": {i for i, t in load.accepted.items() if t == MATCH},
            "/other": {i for i, t in load.accepted.items() if t == OTHER},
        }
        await eventually(
            lambda: all(ids <= set(subscriber.ids(path)) for path, ids in want.items()),
            timeout=180,
            what="every accepted event delivered to each matching trigger",
        )
        assert not set(subscriber.ids("/match")) & want["/other"]
        assert not set(subscriber.ids("/other")) & want["/match"]
    finally:
        await load.stop()
        for p in (a, b):
            if p.proc is not None and p.proc.returncode is None:
                await p.terminate(30)
        await cleanup(created)
