"""A KafkaSource that reads its topic again (its consumer group changed, so it starts
over from the earliest offset, as after an offset reset) gets the same
``partition:<p>/offset:<o>`` ids under the same source: across the restart none of
them is stored again (the source skips what its durable broker remembers storing,
``sources.kafka.positions``); a new record is delivered as usual."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.e2e_support import (
    KafkaPublisher,
    create_topic,
    delete_topic,
    kafka_source,
    manifests,
    source_status,
    write_manifests,
)
from tests.integration.support import eventually_async, unique
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

pytestmark = pytest.mark.integration

NAME = "kafkasource/default/clicks"


async def status(admin_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{admin_url}/v1/status") as r:
        document: dict[str, Any] = await r.json()
    return document


async def duplicates(admin_url: str) -> int:
    """Records read again and not stored: skipped by the source (stored up to their
    offset, ``sources.kafka.positions``) or dropped by the broker (their own key)."""
    document = await status(admin_url)
    (broker,) = document["brokers"]
    (source,) = [s for s in document["sources"] if s["name"] == NAME]
    return int(broker["dropped"].get("*:duplicate", 0)) + int(source["drops"].get("duplicate", 0))


async def backlog_empty(admin_url: str) -> bool:
    return all(t["backlog"] == 0 for t in (await status(admin_url))["triggers"])


async def test_records_read_again_by_a_new_group_are_not_stored_again(
    tmp_path: Path, subscriber: RecordingSubscriber, kafka_bootstrap: str
) -> None:
    topic = unique("dedup-kafka")
    await create_topic(kafka_bootstrap, topic)
    publisher = KafkaPublisher(kafka_bootstrap, topic)
    await publisher.open()
    proc: EventingProcess | None = None
    try:
        sent = [await publisher.send(n) for n in range(6)]
        for group in (unique("dedup-g1"), unique("dedup-g2")):
            source = kafka_source("clicks", kafka_bootstrap, topic, group)
            directory = write_manifests(tmp_path / "manifests", manifests(subscriber.url, source))
            proc = EventingProcess(directory, tmp_path / "data")
            await proc.start()
            admin_url = proc.admin_url
            if group.startswith("dedup-g1"):
                await subscriber.wait_count(len(sent))
                await eventually_async(lambda: backlog_empty(admin_url), what="acked")  # noqa: B023
            else:

                async def all_duplicates() -> bool:
                    return await duplicates(admin_url) == len(sent)  # noqa: B023

                await eventually_async(all_duplicates, what="every record read again dropped")
                sent.append(await publisher.send(99))
                await subscriber.wait_count(len(sent))

                # Every record was accounted for: emitted (counted once the emit
                # returned, i.e. after the fsync; delivery already starts at the
                # commit), or skipped as stored already.
                async def all_emitted() -> bool:
                    status_of = await source_status(admin_url, NAME)  # noqa: B023
                    skipped = status_of["drops"].get("duplicate", 0)
                    return bool(status_of["emitted"] + skipped == len(sent))

                await eventually_async(all_emitted, what="every record emitted")
            assert await proc.terminate(60) == 0, "\n".join(proc.output[-30:])
        ids = sorted(e.id for e in subscriber.events())
        assert ids == sorted(sent)  # each once
    finally:
        if proc is not None and proc.proc is not None and proc.proc.returncode is None:
            await proc.kill()
        await publisher.close()
        with contextlib.suppress(Exception):
            await delete_topic(kafka_bootstrap, topic)
