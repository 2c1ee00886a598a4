"""A Kafka- or RabbitMQ-class broker shared by several ``eventing run`` processes:
the manifests (unique topic/exchange names), a load that remembers every id that got
a 202, and reading a process's admin API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.integration.support import AMQP_URL, KAFKA_BOOTSTRAP, eventually, unique
from tests.support.broker_classes import Created, cleanup
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

MATCH = "com.example.match"
OTHER = "com.example.other"
SKIPPED = "com.example.nobody"
SHAPES = [
    pytest.param("kafka", 0, id="kafka"),
    pytest.param("kafka", 1, id="kafka-worker-produces"),
    pytest.param("rabbitmq", 0, id="rabbitmq"),
]
"""(broker class, ingress workers) of the multi-process and fault tests: with one worker
a Kafka broker's HTTP events are produced by the worker itself."""


def broker_manifests(
    kind: str, subscriber_url: str, *, partitions: int = 4, **trigger_delivery: Any
) -> tuple[str, dict[str, str]]:
    """Manifests of one broker of class ``kind`` (``kafka`` or ``rabbitmq``) with two
    triggers, ``match`` and ``other``, each taking one event type, and the class's
    config."""
    name = unique("eventing-procs")
    if kind == "kafka":
        data = {
            "bootstrap.servers": KAFKA_BOOTSTRAP,
            "default.topic.partitions": str(partitions),
            "topic": name,
            "consumer.group.prefix": name + "-",
        }
        cls = "Kafka"
    else:
        data = {"url": AMQP_URL, "exchange": name, "prefetch": "50"}
        cls = "RabbitMQBroker"
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data},
        {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Broker",
            "metadata": {
                "name": "default",
                "annotations": {"eventing.knative.dev/broker.class": cls},
            },
            "spec": {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg"}},
        },
    ]
    for trigger, event_type in (("match", MATCH), ("other", OTHER)):
        spec: dict[str, Any] = {
            "broker": "default",
            "filters": [{"exact": {"type": event_type}}],
            "subscriber": {"uri": f"{subscriber_url}/{trigger}"},
        }
        if trigger_delivery:
            spec["delivery"] = dict(trigger_delivery)
        docs.append(
            {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Trigger",
                "metadata": {"name": trigger},
                "spec": spec,
            }
        )
    return yaml.safe_dump_all(docs, sort_keys=False), data


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "broker.yaml").write_text(text)
    return directory


def two_processes(
    kind: str, tmp_path: Path, subscriber_url: str, workers: int = 0
) -> tuple[EventingProcess, EventingProcess, Created]:
    """Two ``eventing run`` processes (not started) on one broker of ``kind`` with the
    same manifests and each its own data dir, with ``workers`` ingress workers each (a
    Kafka broker's are then the ones producing); ``Created`` names what to delete
    after."""
    text, config = broker_manifests(kind, subscriber_url)
    manifests = write(tmp_path / "manifests", text)
    created = Created()
    if kind == "kafka":
        created.kafka_topics += [config["topic"], config["topic"] + ".dlq"]
    else:
        created.rabbit_exchanges.append(config["exchange"])
    a = EventingProcess(manifests, tmp_path / "a", "--ingress-workers", str(workers))
    b = EventingProcess(manifests, tmp_path / "b", "--ingress-workers", str(workers))
    return a, b, created


async def stop_all(processes: tuple[EventingProcess, ...], created: Created) -> None:
    """Stop the processes still running, then delete the topics or exchanges."""
    for p in processes:
        if p.proc is not None and p.proc.returncode is None:
            await p.terminate(30)
    await cleanup(created)


@dataclass
class Load:
    """Posts events round-robin to the given ingress URLs (re-read each time, so a
    restarted process is used again) until stopped; remembers ids answered 202."""

    urls: list[Any]
    """Callables returning the current ingress URL of each process (or None)."""
    accepted: dict[str, str] = field(default_factory=dict)
    """id -> type of every event that got a 202."""
    refused: int = 0
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="test load")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def wait_accepted(self, n: int, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.accepted) < n:  # noqa: ASYNC110 - progress of a running load
                await asyncio.sleep(0.02)

    async def _run(self) -> None:
        types = itertools.cycle((MATCH, OTHER, MATCH, SKIPPED))
        counter = itertools.count()
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self._stop.is_set():
                for current in self.urls:
                    url = current()
                    if url is None or self._stop.is_set():
                        continue
                    n = next(counter)
                    event_type = next(types)
                    headers = {
                        "ce-specversion": "1.0",
                        "ce-id": f"ev-{n}",
                        "ce-source": "/load",
                        "ce-type": event_type,
                        "ce-partitionkey": f"k{n % 7}",
                        "Content-Type": "text/plain",
                    }
                    try:
                        async with http.post(url, data=b"x", headers=headers) as response:
                            if response.status == 202:
                                self.accepted[f"ev-{n}"] = event_type
                            else:
                                self.refused += 1
                    except (aiohttp.ClientError, TimeoutError):
                        self.refused += 1
                await asyncio.sleep(0.005)


async def admin_get(admin_url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(admin_url + path) as response:
        return await response.json()


async def ready(admin_url: str) -> bool:
    with contextlib.suppress(aiohttp.ClientError):
        async with aiohttp.ClientSession() as http, http.get(admin_url + "/readyz") as response:
            return response.status == 200
    return False


class Proxy:
    """A TCP forwarder on ``port`` (0: a free one, known after :meth:`start`) to
    ``target`` that can be started late: a server that is "unreachable at start" and
    comes up by itself. While ``hold`` is set, bytes from the client are swallowed
    (never forwarded) and bytes from the server still flow: an ack that is lost."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.hold = False
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        for src, dst, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pipe(src, dst, upstream), name="test proxy pipe")
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if upstream and self.hold:
                    continue  # what the client says (its ack) is lost
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def delivered_to_matching_only(load: Load, subscriber: RecordingSubscriber) -> None:
    """Every event the load got a 202 for reaches each trigger whose filter matches it
    (at least once), and no trigger gets one its filter rejects (id sets compared)."""
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
