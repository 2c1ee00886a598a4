"""Events per second from RabbitMQ and from Kafka, three ways, in the same run against
the same server: the client library alone (the baseline), our source into a counting
``emit``, and the whole system (``eventing run`` with the source, a Broker and one
Trigger delivering over HTTP to a local subscriber); with the ratios to the baseline.

Run against the servers of ``scripts/servers``::

    scripts/servers up rabbitmq kafka   # or: scripts/servers up
    .venv/bin/python bench/bench_sources.py [--messages 20000] [--rounds 3] [--only kafka]
        [--cells raw source system] [--dedup default|on|off]

``--cells`` measures only some columns (the others print as 0); ``--dedup`` sets the
source's ``eventing.local/dedup`` annotation in the system cell. Every cell starts
from a fresh queue / 3-partition topic pre-loaded with ``--messages`` messages before
its clock starts, and reports the median of ``--rounds`` rounds (the 2-core machine
is shared, so single runs vary).

- **raw**: aio-pika ``consume`` (prefetch 100, ack per message) / aiokafka ``getmany``
  with a manual commit of each batch: receive and acknowledge, nothing else.
- **source**: our adapter (decode, validate, id, ack or commit after "storing"); the
  ``emit`` only counts, so this is the source's own cost.
- **system**: ``eventing run`` as a subprocess (durable SQLite store, fsync per group
  commit as by default), the source, a Broker and a Trigger to
  ``bench/bench_servers.py lean`` (a raw asyncio HTTP responder in its own process).
  Timed by the subscriber, from its first delivery to its last; the process start-up
  and the source's connect are not counted.

Why the system row is where it is, in CPU: the table after the rates gives CPU
microseconds per event of the raw client loop (this process), of the source alone, and,
for the system path, of the ``eventing run`` process (all its threads) and of the
subscriber, read from /proc between the subscriber's first delivery and its last (on 2
cores the system path's rate is bounded by the sum).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eventing.events import Event
from eventing.workloads.replica import free_port
from sources.kafka import adapter as kafka
from sources.rabbitmq import adapter as rabbitmq
from sources.support.base import Source

ROOT = Path(__file__).resolve().parents[1]
AMQP = os.environ.get("EVENTING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5682/")
KAFKA = os.environ.get("EVENTING_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9192")
SINK = {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}
PAYLOAD = b'{"order": 12345, "status": "paid", "amount": 99.5}'
PREFETCH = 100


CELLS: set[str] = set()
"""The columns measured (``--cells``)."""
ANNOTATIONS: dict[str, str] = {}
"""Annotations of the sources in the system cell (``--dedup``)."""

CPU: dict[str, list[float]] = {}
"""Measure (or process) -> CPU microseconds per event of each round."""


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_event(name: str, seconds: float, events: int) -> None:
    CPU.setdefault(name, []).append(seconds / max(events, 1) * 1e6)


class CountingEmit:
    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done = asyncio.Event()

    async def __call__(self, events: Sequence[Event], /) -> None:
        self.count += len(events)
        if self.count >= self.target:
            self.done.set()


async def timed_source(source: Source, n: int) -> float:
    emit = CountingEmit(n)
    task = asyncio.create_task(source.run(emit), name=f"bench:{source.name}")
    start, cpu = time.perf_counter(), time.process_time()
    try:
        await asyncio.wait_for(emit.done.wait(), 300)
        kind = source.name.split("/", 1)[0]
        cpu_per_event(f"{kind} alone (this process)", time.process_time() - cpu, n)
        return n / (time.perf_counter() - start)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- RabbitMQ -------------------------------------------------------------------------


async def fill_queue(queue: str, n: int) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(
            f"{queue}-x", aio_pika.ExchangeType.TOPIC, durable=True
        )
        declared = await channel.declare_queue(queue, durable=True)
        await declared.bind(exchange, routing_key="#")
        for i in range(n):
            await exchange.publish(aio_pika.Message(PAYLOAD, message_id=str(i)), "orders.paid")
        for _ in range(6000):  # published without confirms: wait until all are queued
            declared = await channel.declare_queue(queue, passive=True)
            if (declared.declaration_result.message_count or 0) >= n:
                break
            await asyncio.sleep(0.05)


async def drop_queue(queue: str) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(f"{queue}-x")


async def rabbit_raw(queue: str, n: int) -> float:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            seen += 1
            await message.ack()
            if seen >= n:
                done.set()

        start = time.perf_counter()
        tag = await declared.consume(on_message)
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
        await declared.cancel(tag)
        return n / elapsed


async def rabbit_source(queue: str, n: int) -> float:
    resource = rabbitmq.MODEL.model_validate(rabbit_resource(queue))
    return await timed_source(rabbitmq.build(resource), n)


# --- Kafka ----------------------------------------------------------------------------


async def fill_topic(topic: str, n: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, linger_ms=5)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, PAYLOAD, key=str(i % 50).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def drop_topic(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def kafka_raw(topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA,
        group_id=f"raw-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=kafka.BATCH,
    )
    await consumer.start()
    try:
        seen, start, cpu = 0, time.perf_counter(), time.process_time()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=kafka.BATCH)
            offsets = {}
            for tp, records in batches.items():
                seen += len(records)
                offsets[tp] = records[-1].offset + 1
            if offsets:
                await consumer.commit(offsets)
        cpu_per_event("raw aiokafka loop (this process)", time.process_time() - cpu, n)
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def kafka_source(topic: str, n: int) -> float:
    resource = kafka.MODEL.model_validate(kafka_resource(topic))
    return await timed_source(kafka.build(resource), n)


# --- the whole system: eventing run -> broker -> trigger -> HTTP subscriber ---------------


class Subscriber:
    """``bench/bench_servers.py lean PORT`` in its own process: counts deliveries and
    serves ``GET /stats`` ({"count", "first", "last", ...}) and ``POST /reset``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "bench_servers.py"),
            "lean",
            str(self.port),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                await self.stats()
                return
            except (aiohttp.ClientError, OSError):
                if time.monotonic() > deadline:
                    raise SystemExit("the lean subscriber did not start") from None
                await asyncio.sleep(0.05)

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/stats") as r:
            stats: dict[str, Any] = json.loads(await r.read())
            return stats

    async def reset(self) -> None:
        async with aiohttp.ClientSession() as http, http.post(f"{self.url}/reset") as r:
            await r.read()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.proc.wait()


SUBSCRIBER = Subscriber()


def system_manifests(source: dict[str, Any]) -> str:
    broker = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": "default"},
    }
    trigger = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "bench"},
        "spec": {"broker": "default", "subscriber": {"uri": f"{SUBSCRIBER.url}/events"}},
    }
    return "\n---\n".join(json.dumps(doc) for doc in (broker, trigger, source)) + "\n"


async def timed_system(source: dict[str, Any], n: int) -> float:
    """Run ``eventing run`` with ``source`` until the subscriber has ``n`` deliveries;
    events/s from the first delivery to the last."""
    await SUBSCRIBER.reset()
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as work:
        directory = Path(work) / "manifests"
        directory.mkdir()
        (directory / "system.yaml").write_text(system_manifests(source))
        log_path = Path(work) / "eventing.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "eventing.app.cli",
                "run",
                str(directory),
                "--port",
                "0",
                "--admin-port",
                "0",
                "--data-dir",
                str(Path(work) / "data"),
                "--log-level",
                "WARNING",
                cwd=ROOT,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
            assert SUBSCRIBER.proc is not None
            pids = {"eventing run": proc.pid, "subscriber": SUBSCRIBER.proc.pid}
            first: tuple[int, dict[str, float]] | None = None
            try:
                deadline = time.monotonic() + 300
                while (stats := await SUBSCRIBER.stats())["count"] < n:
                    if first is None and stats["count"] > 0:
                        first = (stats["count"], {k: proc_cpu(p) for k, p in pids.items()})
                    if proc.returncode is not None or time.monotonic() > deadline:
                        tail = log_path.read_text(errors="replace")[-3000:]
                        raise SystemExit(f"eventing run: {stats['count']}/{n} delivered\n{tail}")
                    await asyncio.sleep(0.2)
                if first is not None:
                    for name, pid in pids.items():
                        spent = proc_cpu(pid) - first[1][name]
                        cpu_per_event(f"system: {name}", spent, stats["count"] - first[0])
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    await proc.wait()
    return float(stats["count"]) / float(stats["last"] - stats["first"])


def rabbit_resource(queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "RabbitmqSource",
        "metadata": {"name": "bench", "annotations": {"eventing.local/url": AMQP, **ANNOTATIONS}},
        "spec": {
            "rabbitmqResourcesConfig": {
                "queueName": queue,
                "exchangeName": f"{queue}-x",
                "parallelism": PREFETCH,
            },
            "sink": SINK,
        },
    }


def kafka_resource(topic: str) -> dict[str, Any]:
    return {
        "apiVersion": "sources.knative.dev/v1beta1",
        "kind": "KafkaSource",
        "metadata": {"name": "bench", "annotations": dict(ANNOTATIONS)},
        "spec": {
            "bootstrapServers": [KAFKA],
            "topics": [topic],
            "consumerGroup": f"src-{topic}",
            "initialOffset": "earliest",
            "sink": SINK,
        },
    }


async def rabbit_system(queue: str, n: int) -> float:
    return await timed_system(rabbit_resource(queue), n)


async def kafka_system(topic: str, n: int) -> float:
    return await timed_system(kafka_resource(topic), n)


# --- driver ---------------------------------------------------------------------------

Measure = Callable[[str, int], Awaitable[float]]
Fill = Callable[[str, int], Awaitable[None]]
Drop = Callable[[str], Awaitable[None]]


async def median(n: int, rounds: int, fill: Fill, drop: Drop, measure: Measure) -> float:
    if measure.__name__.rsplit("_", 1)[1] not in CELLS:
        return 0.0
    results: list[float] = []
    for _ in range(rounds):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        await fill(name, n)
        try:
            results.append(await measure(name, n))
        finally:
            await drop(name)
    print(f"  {measure.__name__:<14} " + "  ".join(f"{r:>9,.0f}" for r in results), flush=True)
    return float(statistics.median(results))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["rabbitmq", "kafka"], default=None)
    parser.add_argument(
        "--cells",
        nargs="+",
        choices=["raw", "source", "system"],
        default=["raw", "source", "system"],
        help="measure only these columns (the others print as 0)",
    )
    parser.add_argument(
        "--dedup",
        choices=["default", "on", "off"],
        default="default",
        help="the source's eventing.local/dedup annotation in the system cell",
    )
    args = parser.parse_args()
    CELLS.update(args.cells)
    if args.dedup != "default":
        ANNOTATIONS["eventing.local/dedup"] = "true" if args.dedup == "on" else "false"
    n, rounds = args.messages, args.rounds
    print(f"events/s of each round (median reported), {n} messages per round:")
    await SUBSCRIBER.start()
    try:
        rows = []
        if args.only in (None, "rabbitmq"):
            rows.append(
                (
                    "RabbitMQ",
                    await median(n, rounds, fill_queue, drop_queue, rabbit_raw),
                    await median(n, rounds, fill_queue, drop_queue, rabbit_source),
                    await median(n, rounds, fill_queue, drop_queue, rabbit_system),
                )
            )
        if args.only in (None, "kafka"):
            rows.append(
                (
                    "Kafka",
                    await median(n, rounds, fill_topic, drop_topic, kafka_raw),
                    await median(n, rounds, fill_topic, drop_topic, kafka_source),
                    await median(n, rounds, fill_topic, drop_topic, kafka_system),
                )
            )
    finally:
        await SUBSCRIBER.stop()
    print(f"\n{n} messages of {len(PAYLOAD)} bytes, median of {rounds} rounds, events/s\n")
    print(
        f"{'server':<10} {'raw client':>11} {'source':>9} {'system':>9} "
        f"{'source/raw':>11} {'system/raw':>11}"
    )
    for server, raw, source, whole in rows:
        print(
            f"{server:<10} {raw:>11,.0f} {source:>9,.0f} {whole:>9,.0f} "
            f"{source / (raw or 1):>11.2f} {whole / (raw or 1):>11.2f}"
        )
    print("\nCPU microseconds per event (median of the rounds; every round in brackets):")
    for name, values in CPU.items():
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:<42} {statistics.median(values):>7.1f}  [{each}]")


if __name__ == "__main__":
    asyncio.run(main())
