"""No loss on crash, no loss on graceful stop: ``eventing run`` as a subprocess under
continuous load, killed with SIGKILL (or stopped with SIGTERM) mid-stream, restarted;
every event that got a 202 is delivered at least once to each trigger whose filter
matches it, and never to a trigger whose filter rejects it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import pytest

from tests.support.process import EventingProcess
from tests.support.subscriber import Answer, Received, RecordingSubscriber

pytestmark = pytest.mark.e2e

TYPES = ("com.example.a", "com.example.b", "com.example.other")


def manifests(tmp_path: Path, url: str) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
spec:
  delivery: {{retry: 20, backoffDelay: PT0.05S, backoffPolicy: linear}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: only-a}}
spec:
  broker: default
  filters: [{{exact: {{type: com.example.a}}}}]
  subscriber: {{uri: "{url}/a"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: only-b}}
spec:
  broker: default
  filter: {{attributes: {{type: com.example.b}}}}
  subscriber: {{uri: "{url}/b"}}
""")
    return directory


class Load:
    """Concurrent senders that remember every id the broker acknowledged with 202.

    ``url`` may change (a restarted process listens on a new port); senders pick up
    the new one on their next event.
    """

    def __init__(self, senders: int = 8) -> None:
        self.accepted: dict[str, str] = {}
        self.counter = itertools.count()
        self.url = ""
        self.senders = senders
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    async def sender(self, http: aiohttp.ClientSession) -> None:
        while True:
            n = next(self.counter)
            event_type = TYPES[n % len(TYPES)]
            headers = {
                "ce-specversion": "1.0",
                "ce-id": f"ev-{n}",
                "ce-source": "/load",
                "ce-type": event_type,
                "Content-Type": "application/json",
            }
            try:
                async with http.post(self.url, data=b'{"n": %d}' % n, headers=headers) as r:
                    if r.status == 202:
                        async with self._changed:
                            self.accepted[f"ev-{n}"] = event_type
                            self._changed.notify_all()
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0)  # the server is gone: keep trying until cancelled

    def start(self, url: str) -> None:
        self.url = url
        self._http = aiohttp.ClientSession()
        self._tasks = [
            asyncio.create_task(self.sender(self._http), name=f"sender {i}")
            for i in range(self.senders)
        ]

    async def wait_accepted(self, count: int) -> None:
        async with asyncio.timeout(120):
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.accepted) >= count)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()


def expected(load: Load, event_type: str) -> set[str]:
    return {i for i, t in load.accepted.items() if t == event_type}


async def check_delivered(subscriber: RecordingSubscriber, load: Load) -> None:
    want_a, want_b = expected(load, "com.example.a"), expected(load, "com.example.b")

    def complete(_: object) -> bool:
        return want_a <= set(subscriber.ids("/a")) and want_b <= set(subscriber.ids("/b"))

    await subscriber.wait_for(complete, timeout=120)
    assert {e.type for e in subscriber.events("/a")} == {"com.example.a"}
    assert {e.type for e in subscriber.events("/b")} == {"com.example.b"}


def flaky(received: Received, n: int) -> Answer:
    """Every fifth attempt fails, so some events are waiting for a retry at any moment."""
    return Answer(503) if n % 5 == 0 else Answer(202)


async def test_kill_9_mid_stream_loses_no_accepted_event(
    tmp_path: Path, subscriber: RecordingSubscriber
) -> None:
    subscriber.responder = flaky
    proc = EventingProcess(manifests(tmp_path, subscriber.url), tmp_path / "data")
    await proc.start()
    load = Load()
    try:
        load.start(proc.url())
        await load.wait_accepted(400)
        await proc.kill()  # SIGKILL while the senders are still sending
        await proc.start()
        load.url = proc.url()
        await load.wait_accepted(len(load.accepted) + 100)
    finally:
        await load.stop()
    try:
        await check_delivered(subscriber, load)
    finally:
        await proc.terminate(60)


async def test_sigterm_under_load_drains_and_loses_nothing(
    tmp_path: Path, subscriber: RecordingSubscriber
) -> None:
    subscriber.responder = flaky
    proc = EventingProcess(
        manifests(tmp_path, subscriber.url), tmp_path / "data", "--drain-timeout", "5"
    )
    await proc.start()
    load = Load()
    try:
        load.start(proc.url())
        await load.wait_accepted(400)
        code = await proc.terminate(timeout=5 + 25)  # drain deadline plus the hard margin
    finally:
        await load.stop()
    assert code == 0, "\n".join(proc.output[-20:])
    assert any("stopped in" in line for line in proc.output)
    await proc.start()
    try:
        await check_delivered(subscriber, load)
    finally:
        assert await proc.terminate(30) == 0
