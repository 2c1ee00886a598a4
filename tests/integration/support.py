"""Helpers for tests against the real servers of ``scripts/servers``: where they are,
a recording ``emit`` that can be told to fail, running a source as a named task with a
bounded stop, waiting on a condition with a deadline (never a fixed sleep), and
restarting one server mid-test.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventing.errors import StoreError
from eventing.events import Event
from sources.support.base import Emit, Source

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ROOT / "scripts" / "servers"
SKIP_ENV = "EVENTING_SKIP_INTEGRATION"

AMQP_URL = os.environ.get("EVENTING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5682/")
RABBITMQ_MGMT_URL = os.environ.get(
    "EVENTING_TEST_RABBITMQ_MGMT_URL", "http://guest:guest@127.0.0.1:15682/"
)
KAFKA_BOOTSTRAP = os.environ.get("EVENTING_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9192")
MQTT_URL = os.environ.get("EVENTING_TEST_MQTT_URL", "mqtt://127.0.0.1:1893")

BROKER_SINK: dict[str, Any] = {
    "ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}
}


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses: queues, topics, client ids."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class RecordingEmit:
    """``emit`` that records stored events; while ``failing`` it raises ``StoreError``
    (the broker is unavailable) and records nothing; ``delay`` slows each call."""

    events: list[Event] = field(default_factory=list)
    failing: bool = False
    delay: float = 0.0
    calls: int = 0
    failures: int = 0

    async def __call__(self, events: Sequence[Event], /) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            self.failures += 1
            raise StoreError("test: broker unavailable")
        self.events.extend(events)

    def ids(self) -> set[str]:
        return {e.id for e in self.events}

    def payloads(self) -> set[bytes]:
        return {e.data for e in self.events if e.data is not None}


async def eventually(
    condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Like :func:`eventually` for a condition that must do I/O to be checked."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def running(source: Source, emit: Emit) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``source.run(emit)`` as a named task; cancel it and wait (bounded) on exit."""
    task = asyncio.create_task(source.run(emit), name=f"test:{source.name}")
    try:
        yield task
    finally:
        task.cancel()
        try:
            async with asyncio.timeout(15):
                await task
        except asyncio.CancelledError:
            pass


async def restart_server(name: str) -> None:
    """``scripts/servers restart <name>``, off the event loop, so sources keep running."""
    process = await asyncio.create_subprocess_exec(
        str(SERVERS),
        "restart",
        name,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"scripts/servers restart {name} failed:\n{output.decode()}")
