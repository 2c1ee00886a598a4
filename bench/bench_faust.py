"""Does faust-streaming serve as a trigger's consumer better than plain aiokafka?
(issue 8, item 5; not a test). Reads the same N records (1 KiB, 4 partitions) in a
consumer group with each and prints records/s from the first record to the last.

faust-streaming is not a dependency of the project; run this in a venv of its own:

    python3 -m venv /tmp/faustvenv && /tmp/faustvenv/bin/pip install faust-streaming
    /tmp/faustvenv/bin/python bench/bench_faust.py plain 20000
    /tmp/faustvenv/bin/python bench/bench_faust.py faust 20000

Uses the Kafka of ``scripts/servers`` (127.0.0.1:9192). The decision and the numbers
are in docs/architecture.md ("faust-streaming").
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = "127.0.0.1:9192"


async def prepare(topic: str, n: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 4, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    await producer.start()
    body = b"x" * 1024
    futures = [
        await producer.send(topic, body, key=b"%d" % i, headers=[("ce_id", b"%d" % i)])
        for i in range(n)
    ]
    await asyncio.gather(*futures)
    await producer.stop()


async def plain(topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=topic + "-plain",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen, first, last_commit = 0, 0.0, time.monotonic()
    while seen < n:
        batch = await consumer.getmany(timeout_ms=200, max_records=1000)
        for records in batch.values():
            if records and not first:
                first = time.perf_counter()
            seen += len(records)
        if time.monotonic() - last_commit > 0.2:
            await consumer.commit()
            last_commit = time.monotonic()
    end = time.perf_counter()
    await consumer.commit()
    await consumer.stop()
    return n / (end - first)


def faust_rate(topic: str, n: int) -> float:
    import faust

    app = faust.App(
        topic + "-faust",
        broker=f"kafka://{BOOTSTRAP}",
        value_serializer="raw",
        web_enabled=False,
        topic_partitions=4,
        store="memory://",
        broker_commit_interval=0.2,
    )
    state: dict[str, Any] = {"seen": 0, "first": 0.0, "end": 0.0}

    @app.agent(app.topic(topic, value_type=bytes))  # type: ignore[untyped-decorator]
    async def count(stream: Any) -> None:
        async for _ in stream:
            if not state["first"]:
                state["first"] = time.perf_counter()
            state["seen"] += 1
            if state["seen"] == n:
                state["end"] = time.perf_counter()
                asyncio.get_running_loop().create_task(app.stop(), name="stop faust")

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    with contextlib.suppress(SystemExit):  # the worker exits once the agent stopped it
        worker.execute_from_commandline()
    return float(n / (state["end"] - state["first"]))


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else "plain"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    topic = f"faustbench-{uuid.uuid4().hex[:6]}"
    asyncio.run(prepare(topic, n))
    rate = asyncio.run(plain(topic, n)) if which == "plain" else faust_rate(topic, n)
    print(f"{which}: {rate:,.0f} records/s (topic {topic}; delete it afterwards)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
