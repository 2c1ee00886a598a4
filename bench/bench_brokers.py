"""Broker-class benchmark (not a test): events/s ingress -> broker -> one trigger ->
a local HTTP subscriber for the Kafka and RabbitMQ classes with 1 and 2 ``eventing
run`` processes, next to the raw client pipelines on the same server in the same run
(raw aiokafka: produce with ``acks=all`` + idempotence, consume in a group with
commits; raw aio-pika: publish with confirms, consume with acks), and next to the
"raw HTTP pipeline" (bench/raw_http_pipeline.py): the smallest hand-written program
with the same guarantees that speaks HTTP at both ends like the class (an aiohttp
handler producing with acks=all + idempotence or publishing with a confirm before its
202, a consumer POSTing each record to the same subscriber and committing or acking
after the 2xx), driven by the same wrk load. The raw clients show what the server
gives; the raw HTTP pipeline is what a user's own pipeline costs.

    .venv/bin/python bench/bench_brokers.py [--seconds 8] [--connections 32] [--rounds 3]
        [--only kafka] [--embedded]

Needs ``wrk`` and the servers of ``scripts/servers`` (Kafka 127.0.0.1:9192, RabbitMQ
127.0.0.1:5682; override with EVENTING_TEST_KAFKA_BOOTSTRAP / EVENTING_TEST_AMQP_URL).
Every ``eventing run`` and the subscriber run as their own processes; the raw
pipelines run in this process. Payload: 1 KiB of JSON. Topics, exchanges and queues
get unique names and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from bench_pipeline import PAYLOAD, eventing_run, start, stop, subscriber_stats, wrk_missing
from bench_pipeline import WRK_SINGLE as WRK

from eventing.workloads.replica import free_port

KAFKA = os.environ.get("EVENTING_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9192")
AMQP = os.environ.get("EVENTING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5682/")
PARTITIONS = 4
CE_HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"bench-1"),
    ("ce_source", b"/bench"),
    ("ce_type", b"bench.event"),
    ("content-type", b"application/json"),
]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def wrk(url: str, seconds: int, connections: int) -> subprocess.Popen[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK % PAYLOAD)
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
        stdout=subprocess.PIPE,
        text=True,
    )


def wrk_accepted(proc: subprocess.Popen[str]) -> int:
    out, _ = proc.communicate()
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total - (int(bad.group(1)) if bad else 0)


def manifests(directory: Path, kind: str, name: str, sub_url: str) -> None:
    if kind == "kafka":
        cls = "Kafka"
        data = (
            f'{{bootstrap.servers: "{KAFKA}", default.topic.partitions: "{PARTITIONS}", '
            f'topic: "{name}", consumer.group.prefix: "{name}-"}}'
        )
    elif kind == "rabbitmq":
        cls = "RabbitMQBroker"
        data = f'{{url: "{AMQP}", exchange: "{name}", prefetch: "200"}}'
    else:  # embedded: the same pipeline with no broker server (its SQLite store)
        cls, data = "MTChannelBasedBroker", ""
    config = (
        f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {data}
---
"""
        if data
        else ""
    )
    spec = "{config: {apiVersion: v1, kind: ConfigMap, name: cfg}}" if data else "{}"
    (directory / "bench.yaml").write_text(f"""{config}apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  annotations: {{eventing.knative.dev/broker.class: {cls}}}
spec: {spec}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: bench}}
spec:
  broker: default
  filters: [{{exact: {{type: bench.event}}}}]
  subscriber: {{uri: "{sub_url}/events"}}
""")


def eventing_rate(kind: str, processes: int, seconds: int, connections: int) -> tuple[float, float]:
    """(accepted events/s, delivered events/s) through ``processes`` eventing runs."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="eventing-bench-brokers-"))
    sub_port = free_port()
    sub_url = f"http://127.0.0.1:{sub_port}"
    manifests(work, kind, name, sub_url)
    sub = start("bench/bench_servers.py", "lean", str(sub_port))
    systems: list[subprocess.Popen[bytes]] = []
    ingresses: list[str] = []
    try:
        wait_http(f"{sub_url}/stats")
        for i in range(processes):
            port, admin = free_port(), free_port()
            systems.append(start(*eventing_run(work, port, admin, data=f"data{i}")))
            ingresses.append(f"http://127.0.0.1:{port}/default/default")
            wait_http(f"http://127.0.0.1:{admin}/readyz")
        return _measure(sub_url, ingresses, seconds, connections)
    finally:
        for system in systems:
            stop(system)
        stop(sub)
        shutil.rmtree(work, ignore_errors=True)
        asyncio.run(_cleanup(kind, name))


def _measure(
    sub_url: str, ingresses: list[str], seconds: int, connections: int
) -> tuple[float, float]:
    """(accepted/s, delivered/s) of one wrk run split over ``ingresses`` once the
    consumer groups have settled (a rebalance per process joining), counted by the
    subscriber from its reset to the last event delivered."""
    time.sleep(3)
    urllib.request.urlopen(urllib.request.Request(f"{sub_url}/reset", method="POST"))
    started = time.time()
    per = max(1, connections // len(ingresses))
    loads = [wrk(url, seconds, per) for url in ingresses]
    accepted = sum(wrk_accepted(p) for p in loads)
    deadline = time.monotonic() + 120
    while subscriber_stats(sub_url)["count"] < accepted and time.monotonic() < deadline:
        time.sleep(0.2)
    stats = subscriber_stats(sub_url)
    return accepted / seconds, stats["count"] / max(1e-9, stats["last"] - started)


def _add_ratio(
    ratios: dict[str, list[float | None]], name: str, value: float, baseline: float
) -> None:
    """Append value / baseline to ``ratios[name]``, or None (printed "invalid", left out
    of the median) when the baseline measured nothing: a pipeline that failed to start
    must not show as a ratio of 5e12."""
    ratios.setdefault(name, []).append(value / baseline if baseline > 0 else None)


def raw_http_rate(kind: str, processes: int, seconds: int, connections: int) -> tuple[float, float]:
    """(accepted events/s, delivered events/s) through ``processes`` copies of the
    hand-written HTTP pipeline of raw_http_pipeline.py (each its own process, one
    consumer group or queue), under the same wrk load and subscriber as the class."""
    name = f"bench-rawhttp-{uuid.uuid4().hex[:8]}"
    sub_port = free_port()
    sub_url = f"http://127.0.0.1:{sub_port}"
    sub = start("bench/bench_servers.py", "lean", str(sub_port))
    server = KAFKA if kind == "kafka" else AMQP
    pipelines: list[subprocess.Popen[bytes]] = []
    ingresses: list[str] = []
    try:
        wait_http(f"{sub_url}/stats")
        for _ in range(processes):
            port = free_port()
            pipelines.append(
                start("bench/raw_http_pipeline.py", kind, str(port), name, sub_url, server)
            )
            ingresses.append(f"http://127.0.0.1:{port}/")
            wait_http(ingresses[-1])
        return _measure(sub_url, ingresses, seconds, connections)
    finally:
        for pipeline in pipelines:
            stop(pipeline)
        stop(sub)
        asyncio.run(_cleanup_raw(kind, name))


async def _cleanup_raw(kind: str, name: str) -> None:
    if kind == "kafka":
        await _cleanup(kind, name)
        return
    import aio_pika

    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel()
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            await channel.queue_delete(name)
    finally:
        await connection.close()


async def raw_kafka(n: int, closed: int | None = None) -> float:
    """Produce ``n`` records (acks=all, idempotence, 2000 in flight) while a consumer in
    a group reads and commits them; records/s from the first send to the last read.

    With ``closed``: that many producing tasks, each awaiting its record's
    acknowledgement before sending the next (the concurrency wrk's connections give
    the ingress, where each 202 waits for its record's acknowledgement)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, linger_ms=1
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA,
        group_id=topic,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    body = PAYLOAD.encode()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        done = asyncio.get_running_loop().create_future()

        async def consume() -> None:
            seen, last_commit = 0, time.monotonic()
            while seen < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=1000)
                seen += sum(len(records) for records in batch.values())
                if time.monotonic() - last_commit > 0.2:
                    await consumer.commit()
                    last_commit = time.monotonic()
            await consumer.commit()
            done.set_result(time.perf_counter())

        reader = asyncio.create_task(consume(), name="bench raw kafka consumer")
        begin = time.perf_counter()
        if closed is not None:
            sent = 0

            async def one_at_a_time() -> None:
                nonlocal sent
                while sent < n:
                    sent += 1
                    await (await producer.send(topic, body, key=b"k%d" % sent, headers=CE_HEADERS))

            await asyncio.gather(*(one_at_a_time() for _ in range(closed)))
        else:
            pending: list[Any] = []
            for i in range(n):
                pending.append(await producer.send(topic, body, key=b"k%d" % i, headers=CE_HEADERS))
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    pending = []
            await asyncio.gather(*pending)
        end: float = await done
        await reader
        return n / (end - begin)
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def raw_rabbitmq(n: int) -> float:
    """Publish ``n`` persistent messages with confirms (500 in flight) to a quorum
    queue while a consumer (prefetch 200) acks each; messages/s end to end."""
    import aio_pika

    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=200)
        seen = 0
        done = asyncio.get_running_loop().create_future()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == n and not done.done():
                done.set_result(time.perf_counter())

        await (await consuming.get_queue(name)).consume(on_message)
        begin = time.perf_counter()
        body = PAYLOAD.encode()
        headers: dict[str, Any] = {"specversion": "1.0", "id": "b", "source": "/b", "type": "t"}
        sem = asyncio.Semaphore(500)

        async def publish() -> None:
            async with sem:
                await channel.default_exchange.publish(
                    aio_pika.Message(body, headers=headers, delivery_mode=2), routing_key=name
                )

        await asyncio.gather(*(publish() for _ in range(n)))
        end: float = await done
        await queue.delete(if_unused=False, if_empty=False)
        return n / (end - begin)
    finally:
        await connection.close()


async def _cleanup(kind: str, name: str) -> None:
    if kind == "embedded":
        return  # its store was in the removed work directory
    if kind == "kafka":
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            gone = [t for t in (name, name + ".dlq") if t in existing]
            if gone:
                await admin.delete_topics(gone)
        finally:
            await admin.close()
        return
    import aio_pika

    connection = await aio_pika.connect(AMQP)
    try:
        for queue in (f"{name}.default.bench", f"{name}.dlq"):
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(queue)
        channel = await connection.channel()
        await channel.exchange_delete(name)
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--raw-events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", choices=["kafka", "rabbitmq"], default=None)
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="also the embedded class through the same pipeline (its ceiling without a server)",
    )
    args = parser.parse_args()
    if wrk_missing():
        return 2
    # path -> one (accepted/s, delivered/s or None) per round
    runs: dict[str, list[tuple[float, float | None]]] = {}
    ratios: dict[str, list[float | None]] = {}
    for round_ in range(args.rounds):
        for kind in ("kafka", "rabbitmq"):
            if args.only not in (None, kind):
                continue
            if kind == "kafka":
                raw = asyncio.run(raw_kafka(args.raw_events))
                closed = asyncio.run(raw_kafka(args.raw_events // 2, args.connections))
                runs.setdefault("raw aiokafka produce(acks=all)+consume", []).append((raw, None))
                runs.setdefault(
                    f"raw aiokafka, {args.connections} awaited sends at a time", []
                ).append((closed, None))
            else:
                raw = asyncio.run(raw_rabbitmq(args.raw_events))
                runs.setdefault("raw aio-pika confirm+consume", []).append((raw, None))
            client = "aiokafka" if kind == "kafka" else "aio-pika"
            by_hand = raw_http_rate(kind, 1, args.seconds, args.connections)
            by_hand2 = raw_http_rate(kind, 2, args.seconds, args.connections)
            runs.setdefault(f"raw HTTP pipeline ({client}), 1 process", []).append(by_hand)
            runs.setdefault(f"raw HTTP pipeline ({client}), 2 processes", []).append(by_hand2)
            if kind == "kafka" and args.embedded:
                runs.setdefault("embedded class, 1 process (no server)", []).append(
                    eventing_rate("embedded", 1, args.seconds, args.connections)
                )
            one = eventing_rate(kind, 1, args.seconds, args.connections)
            two = eventing_rate(kind, 2, args.seconds, args.connections)
            runs.setdefault(f"{kind} class, 1 process", []).append(one)
            runs.setdefault(f"{kind} class, 2 processes", []).append(two)
            add = partial(_add_ratio, ratios)
            add(f"{kind}: 1 process / raw", min(one), raw)
            add(f"{kind}: 1 process / raw HTTP pipeline", min(one), min(by_hand))
            add(f"{kind}: 1 process / raw HTTP pipeline, 2 processes", min(one), min(by_hand2))
            add(f"{kind}: 2 processes / raw HTTP pipeline, 2 processes", min(two), min(by_hand2))
            add(f"{kind}: 2 processes / 1 process", min(two), min(one))
            if kind == "kafka":
                add(
                    f"kafka: 1 process / raw with {args.connections} awaited sends",
                    min(one),
                    closed,
                )
            print(f"round {round_ + 1} {kind} done ({time.strftime('%H:%M:%S')})", flush=True)
    print(
        f"\n1 KiB JSON events, wrk -t1 -c{args.connections} -d{args.seconds}s per run "
        f"(split over the processes), {PARTITIONS} partitions, {os.cpu_count()} CPUs, "
        f"median of {args.rounds} round(s); every round in brackets\n"
    )
    print(f"{'path':<48} {'accepted/s':>11} {'delivered/s':>12}  rounds (accepted/delivered)")
    print("-" * 100)
    for name, values in runs.items():
        accepted = statistics.median(a for a, _ in values)
        delivered = [d for _, d in values if d is not None]
        shown = f"{statistics.median(delivered):,.0f}" if delivered else "-"
        each = ", ".join(f"{a:,.0f}" + ("" if d is None else f"/{d:,.0f}") for a, d in values)
        print(f"{name:<48} {accepted:>11,.0f} {shown:>12}  [{each}]")
    print()
    for name, series in ratios.items():
        listed = ", ".join("invalid" if v is None else f"{v:.2f}" for v in series)
        valid = [v for v in series if v is not None]
        median = f"{statistics.median(valid):.2f}" if valid else "invalid"
        print(f"{name} = {median}  [{listed}]")
    print("(a raw client row is end to end: first send to last consume; its accepted/s is that")
    print(" rate; the raw HTTP pipeline is bench/raw_http_pipeline.py under the same wrk load,")
    print(" one OS process per pipeline process; one eventing run is its main process and")
    print(f" {max(0, min(2, (os.cpu_count() or 1) - 1))} ingress worker(s) here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
