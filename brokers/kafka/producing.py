"""The produce side of a Kafka broker: one idempotent producer (``acks=all``), the
sticky partitions and the batches formed for it, and the answer "acknowledged" or a
:class:`StoreError` with ``Retry-After``.

Why a class of its own: two processes produce to a broker's topic. The main process
(:class:`~brokers.kafka.broker.KafkaBroker`: sources, replies, replays, dead letters)
and, with ``--ingress-workers``, every ingress worker for what comes in over HTTP
(:mod:`brokers.kafka.ingress`), so the ingress's records do not cross to the main
process and back before their 202. Both must bind, batch and acknowledge the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from brokers.kafka.batches import Batches
from brokers.kafka.binding import to_record
from brokers.kafka.config import KafkaSettings
from brokers.kafka.sticky import StickyPartitions
from brokers.support import describe
from eventing.errors import StoreError
from eventing.events import Event
from eventing.settle import uncut

PUBLISH_TIMEOUT = 15.0
"""Seconds a produce may wait for its acknowledgement (then 503 with Retry-After)."""


class Producing:
    """One producer and what batches for it; :meth:`start` again after :meth:`stop`."""

    def __init__(self, name: str, settings: KafkaSettings, client_id: str) -> None:
        self.name = name
        self.settings = settings
        self.client_id = client_id
        self.producer: Any = None
        self.error: str | None = "not connected yet"
        self.sticky = StickyPartitions()
        self._batches: Batches | None = None

    async def start(self) -> None:
        """Create and start the producer unless one is running (it is kept before it
        starts, so a start cut short is still closed by :meth:`stop`)."""
        if self.producer is not None:
            return
        self.producer = AIOKafkaProducer(
            bootstrap_servers=list(self.settings.bootstrap_servers),
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            # aiokafka keeps one produce request in flight per connection; what
            # arrives meanwhile waits for the next one. Lingering when idle only
            # adds latency, and batches large enough for everything that waited
            # make each request carry all of it (one batch: StickyPartitions).
            linger_ms=self.settings.linger_ms,
            max_batch_size=self.settings.batch_size,
            request_timeout_ms=int(PUBLISH_TIMEOUT * 1000),
        )
        await uncut(self.producer.start())
        self.error = None

    async def stop(self) -> None:
        producer, self.producer = self.producer, None
        self._batches = None
        if producer is not None:
            async with asyncio.timeout(5):
                await producer.stop()

    def unreachable(self, error: str | None) -> StoreError:
        """The refusal while there is no producer (or it is not trusted now)."""
        refusal = StoreError(f"broker {self.name}: Kafka is unreachable ({error})")
        refusal.retry_after = 5.0
        return refusal

    def not_acknowledged(self, exc: BaseException) -> StoreError:
        self.error = describe(exc)
        refusal = StoreError(f"broker {self.name}: Kafka did not acknowledge: {self.error}")
        refusal.retry_after = 2.0
        return refusal

    async def produce_batched(self, events: Sequence[Event], timeout: float) -> None:
        """Produce to the broker's topic and wait for every acknowledgement: key-less
        records in the batches formed by :class:`~brokers.kafka.batches.Batches` on the
        sticky partition, keyed ones one by one on their key's partition."""
        producer = self.producer
        if producer is None:
            raise self.unreachable(self.error)
        topic = self.settings.topic
        try:
            async with asyncio.timeout(timeout):
                partitions = await producer.partitions_for(topic)
                batches = self._batches
                if batches is None or batches.producer is not producer:
                    batches = self._batches = Batches(producer, topic, self.name)
                shared: list[asyncio.Future[None]] = []
                alone: list[Any] = []
                sticky: set[int] = set()
                for event in events:
                    key, value, headers = to_record(event)
                    partition = None
                    if key is None:
                        partition = self.sticky.pick(topic, partitions)
                    if partition is not None and value is not None:
                        sticky.add(partition)
                        done = batches.add(partition, value, headers)
                        if done is not None:
                            if not shared or shared[-1] is not done:
                                shared.append(done)
                            continue
                    alone.append(
                        await producer.send(
                            topic, value, key=key, headers=headers, partition=partition
                        )
                    )
                # shielded: a batch is shared with other publishers, whom this
                # publisher's deadline must not cancel
                await asyncio.gather(*(asyncio.shield(d) for d in shared), *alone)
                for partition in sticky:
                    self.sticky.acknowledged(topic, partition, partitions)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self.not_acknowledged(exc) from exc

    async def produce(
        self, topic: str, events: Sequence[Event], extra: dict[str, str] | None = None
    ) -> list[Any]:
        """Produce one by one and wait for every acknowledgement; the records' metadata."""
        producer = self.producer
        if producer is None:
            raise self.unreachable(self.error)
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                partitions = await producer.partitions_for(topic)
                futures = []
                sticky: set[int] = set()
                for event in events:
                    key, value, headers = to_record(event, extra)
                    partition = None
                    if key is None:
                        partition = self.sticky.pick(topic, partitions)
                        if partition is not None:
                            sticky.add(partition)
                    futures.append(
                        await producer.send(
                            topic, value, key=key, headers=headers, partition=partition
                        )
                    )
                written = list(await asyncio.gather(*futures))
                for partition in sticky:
                    self.sticky.acknowledged(topic, partition, partitions)
                return written
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self.not_acknowledged(exc) from exc
