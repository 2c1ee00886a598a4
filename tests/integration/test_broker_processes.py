"""Several ``eventing run`` processes on one Kafka- or RabbitMQ-class broker lose
nothing when one of them is killed mid-stream.

Two processes get the same manifests (one broker, triggers ``match`` and ``other``
with exact type filters) and each its own data dir. A load posts to both ingresses
all the time; one process is ``kill -9``-ed and restarted three times while it runs.
Then every event that got a 202 must reach each matching trigger at least once, and
no trigger may receive an event its filter rejects (the id sets are compared). The
Kafka class runs it twice: without ingress workers, and with one per process (which
then produces the HTTP events itself, :mod:`brokers.kafka.ingress`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.broker_rig import (
    SHAPES,
    Load,
    admin_get,
    delivered_to_matching_only,
    ready,
    stop_all,
    two_processes,
)
from tests.integration.support import eventually_async, restart_server
from tests.support.subscriber import RecordingSubscriber

KILLS = 3


@pytest.mark.parametrize(("kind", "workers"), SHAPES)
async def test_kill_9_of_one_process_loses_nothing(
    kind: str,
    workers: int,
    tmp_path: Path,
    subscriber: RecordingSubscriber,
    kafka_bootstrap: str,
    amqp_url: str,
) -> None:
    a, b, created = two_processes(kind, tmp_path, subscriber.url, workers)
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
        await delivered_to_matching_only(load, subscriber)
        assert all(i.startswith("ev-") for i in subscriber.ids("/match") + subscriber.ids("/other"))
        metrics = await _metrics(b.admin_url)
        assert 'eventing_process_info{process="' in metrics
    finally:
        await load.stop()
        await stop_all((a, b), created)


async def _metrics(admin_url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(admin_url + "/metrics") as response:
        return await response.text()


@pytest.mark.parametrize(("kind", "workers"), SHAPES)
async def test_server_restart_mid_stream_loses_nothing(
    kind: str,
    workers: int,
    tmp_path: Path,
    subscriber: RecordingSubscriber,
    kafka_bootstrap: str,
    amqp_url: str,
) -> None:
    """The Kafka or RabbitMQ server itself restarts under load (``scripts/servers
    restart``; the shared test server, so this runs last): both processes answer 503
    meanwhile, recover by themselves, and every 202'd event is delivered."""
    a, b, created = two_processes(kind, tmp_path, subscriber.url, workers)
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
        await delivered_to_matching_only(load, subscriber)
    finally:
        await load.stop()
        await stop_all((a, b), created)
