"""The ``dlq:`` store of a Kafka broker: a one-partition dead-letter topic.

A dead letter is a record in the broker's binding plus the ``eventing-dl-*`` headers
(:mod:`eventing.broker.deadletter_log`); deleting or replaying appends a tombstone.
The task ``kafka dlq <broker>`` tails the topic from its start into a
:class:`~eventing.broker.deadletter_log.DeadLetterLog`, so every process lists the
same dead letters with the same ids, including those written by other processes and
before a restart. ``append`` returns only once the record is acknowledged by all
in-sync replicas; the subscription acks the event after that, never before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from brokers.kafka.binding import from_record, header_map
from brokers.support import TOMBSTONE, Backoff, LoggedDeadLetters, describe
from eventing.broker.deadletter_log import DeadLetterMeta
from eventing.events import Event
from eventing.settle import uncut

if TYPE_CHECKING:
    from brokers.kafka.broker import KafkaBroker

logger = logging.getLogger(__name__)


class KafkaDeadLetters(LoggedDeadLetters):
    def __init__(self, broker: KafkaBroker) -> None:
        super().__init__(broker.key)
        self.broker = broker

    async def append(self, event: Event, meta: DeadLetterMeta) -> None:
        [written] = await self.broker.produce(
            self.broker.settings.dlq_topic, [event], meta.headers()
        )
        self.log.add(written.offset, event, meta)

    async def write_tombstone(self, headers: dict[str, str]) -> None:
        await self.broker.produce(self.broker.settings.dlq_topic, [TOMBSTONE], headers)

    async def tail(self) -> None:
        """Read the dead-letter topic from where the index stands, forever."""
        backoff = Backoff()
        while True:
            await self.broker.wait_connected()
            consumer = AIOKafkaConsumer(
                bootstrap_servers=list(self.broker.settings.bootstrap_servers),
                client_id=self.broker.client_id("dlq"),
                enable_auto_commit=False,
                group_id=None,
            )
            tp = TopicPartition(self.broker.settings.dlq_topic, 0)
            try:
                await uncut(consumer.start())
                consumer.assign([tp])
                if self.log.read_up_to >= 0:
                    consumer.seek(tp, self.log.read_up_to + 1)
                else:
                    await consumer.seek_to_beginning(tp)
                backoff.reset()
                while True:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
                    for record in batch.get(tp, []):
                        self._apply(record)
            except (KafkaError, OSError) as exc:
                logger.info("dead-letter topic of %s: %s", self.broker.key, describe(exc))
            finally:
                try:
                    async with asyncio.timeout(5):
                        await consumer.stop()
                except Exception as exc:  # a broken consumer: nothing left to keep
                    logger.debug("stopping the dlq reader: %s", describe(exc))
            await asyncio.sleep(backoff.next())

    def _apply(self, record: Any) -> None:
        headers = list(record.headers or ())
        self.index(record.offset, header_map(headers), lambda: from_record(record.value, headers))
