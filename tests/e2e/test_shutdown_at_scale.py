"""Shutdown at scale: ``eventing run`` with hundreds of triggers whose subscriber
accepts connections and never answers, deliveries on the wire and many more waiting
for a connection, stops on SIGTERM by itself (exit 0: its own watchdog would exit 70
past the hard deadline), and loses nothing: a restart with a working subscriber
delivers every accepted event to its trigger. (The time it takes against the drain
deadline is measured by ``bench/bench_shutdown.py``, not asserted here.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.mesh import wait_until
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

pytestmark = pytest.mark.e2e

TRIGGERS = 300
PER_TRIGGER = 3  # 900 deliveries: more than the client's 256 connections per host


class HungSubscriber:
    """Accepts, reads, never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = ""
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(65536):
            pass

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def write_manifests(directory: Path, url: str) -> None:
    parts = ["apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"]
    for i in range(TRIGGERS):
        parts.append(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\n"
            f"metadata: {{name: t{i}}}\nspec:\n  broker: default\n"
            f"  filters: [{{exact: {{type: scale.t{i}}}}}]\n"
            f'  subscriber: {{uri: "{url}/t{i}"}}\n'
            "  delivery: {timeout: PT10M, retry: 3, backoffDelay: PT0.05S}\n"
        )
    (directory / "scale.yaml").write_text("---\n".join(parts))


async def post_all(url: str) -> set[tuple[str, str]]:
    """Every event once per trigger (batched, 100 per request); (id, path) accepted."""
    events = [
        {"specversion": "1.0", "id": f"e{i}-{n}", "source": "/scale", "type": f"scale.t{i}"}
        for n in range(PER_TRIGGER)
        for i in range(TRIGGERS)
    ]
    accepted: set[tuple[str, str]] = set()
    async with aiohttp.ClientSession() as http:
        for start in range(0, len(events), 100):
            batch = events[start : start + 100]
            headers = {"Content-Type": "application/cloudevents-batch+json"}
            async with http.post(url, data=json.dumps(batch), headers=headers) as response:
                assert response.status // 100 == 2, await response.text()
            accepted |= {(e["id"], "/" + e["type"].split(".")[1]) for e in batch}
    return accepted


async def test_shutdown_with_many_triggers_and_a_hung_subscriber_is_bounded_and_loses_nothing(
    tmp_path: Path,
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    hung = HungSubscriber()
    await hung.start()
    write_manifests(manifests, hung.url)
    system = EventingProcess(manifests, tmp_path / "data", "--drain-timeout", "1")
    try:
        await system.start(timeout=120)
        accepted = await post_all(system.url())
        await wait_until(lambda: hung.connections >= 256, 60, "deliveries on the wire")
        code = await system.terminate(timeout=120)
    finally:
        await system.kill()
        await hung.stop()
    output = "\n".join(system.output)
    assert code == 0, output  # 70 would be the watchdog's hard exit
    assert "stopped in" in output

    subscriber = RecordingSubscriber()
    await subscriber.start()
    write_manifests(manifests, subscriber.url)
    system = EventingProcess(manifests, tmp_path / "data")
    try:
        await system.start(timeout=120)

        def delivered() -> set[tuple[str, str]]:
            return {(r.event.id, r.path) for r in subscriber.received if r.event is not None}

        await wait_until(lambda: accepted <= delivered(), 120, "every accepted event delivered")
        assert delivered() == accepted
        assert await system.terminate(timeout=60) == 0
    finally:
        await system.kill()
        await subscriber.stop()
