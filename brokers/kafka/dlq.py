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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from brokers.kafka.binding import from_record, header_map
from brokers.support import Backoff, describe
from eventing.broker.deadletter_log import (
    DeadLetterLog,
    DeadLetterMeta,
    parse_meta,
    parse_tombstone,
    tombstone_headers,
)
from eventing.broker.store import DeadLetter
from eventing.errors import InvalidEventError
from eventing.events import Event

if TYPE_CHECKING:
    from brokers.kafka.broker import KafkaBroker

logger = logging.getLogger(__name__)


class KafkaDeadLetters:
    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self.log = DeadLetterLog(broker.key)

    async def append(self, event: Event, meta: DeadLetterMeta) -> None:
        [written] = await self.broker.produce(
            self.broker.settings.dlq_topic, [event], meta.headers()
        )
        self.log.add(written.offset, event, meta)

    async def list_dead_letters(
        self, trigger: str | None, limit: int, after_id: int = 0
    ) -> list[DeadLetter]:
        return self.log.list(trigger, limit, after_id)

    async def get_dead_letter(self, dl_id: int) -> DeadLetter | None:
        return self.log.get(dl_id)

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        mine = [i for i in ids if self.log.get(i) is not None]
        if not mine:
            return 0
        tombstone = Event({"specversion": "1.0", "id": "-", "source": "-", "type": "-"})
        await self.broker.produce(
            self.broker.settings.dlq_topic, [tombstone], tombstone_headers(mine)
        )
        return self.log.delete(-1, mine)

    def depths(self) -> Mapping[str, int]:
        return self.log.depths()

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
                await consumer.start()
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
        own = header_map(headers)
        deletes = parse_tombstone(own)
        if deletes:
            self.log.delete(record.offset, deletes)
            return
        meta = parse_meta(own)
        if meta is None:
            self.log.skip(record.offset)
            return
        try:
            event = from_record(record.value, headers)
        except InvalidEventError:
            self.log.skip(record.offset)
            return
        self.log.add(record.offset, event, meta)
