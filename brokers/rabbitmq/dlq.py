"""The ``dlq:`` store of a RabbitMQ broker: a stream queue per broker.

A stream (not a classic or quorum queue) because ``eventing dlq list`` must read the
dead letters without consuming them, in every process, after restarts. A dead letter
is a message in the broker's binding plus the ``eventing-dl-*`` headers
(:mod:`eventing.broker.deadletter_log`); deleting or replaying appends a tombstone.
``append`` returns once RabbitMQ confirmed the message; the subscription acks the
event after that, never before. The task ``rabbitmq dlq <broker>`` reads the stream
from where its index stands (``x-stream-offset``) on every connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aio_pika.abc import AbstractIncomingMessage as Incoming
from aio_pika.exceptions import AMQPError

from brokers.rabbitmq.binding import from_message, own_headers
from brokers.support import TOMBSTONE, LoggedDeadLetters, describe
from eventing.broker.deadletter_log import DeadLetterMeta
from eventing.events import Event

if TYPE_CHECKING:
    from brokers.rabbitmq.broker import RabbitBroker

logger = logging.getLogger(__name__)

PREFETCH = 200


class RabbitDeadLetters(LoggedDeadLetters):
    def __init__(self, broker: RabbitBroker) -> None:
        super().__init__(broker.key)
        self.broker = broker

    async def append(self, event: Event, meta: DeadLetterMeta) -> None:
        headers = {**meta.headers(), "routing-key": self.broker.settings.dead_letter_queue}
        await self.broker.send("", [event], headers)

    async def write_tombstone(self, headers: dict[str, str]) -> None:
        routed = {**headers, "routing-key": self.broker.settings.dead_letter_queue}
        await self.broker.send("", [TOMBSTONE], routed)

    async def tail(self) -> None:
        """Consume the stream from the index's position on every connection."""
        while True:
            await self.broker.wait_connected()
            connection = self.broker.connection
            if connection is None:
                continue
            try:
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=PREFETCH)
                queue = await channel.declare_queue(
                    self.broker.settings.dead_letter_queue,
                    durable=True,
                    arguments={"x-queue-type": "stream"},
                )
                start: int | str = self.log.read_up_to + 1 if self.log.read_up_to >= 0 else "first"
                await queue.consume(self._on_message, arguments={"x-stream-offset": start})
            except AMQPError as exc:
                logger.info("dead-letter stream of %s: %s", self.broker.key, describe(exc))
            await self.broker.wait_lost()

    async def _on_message(self, message: Incoming) -> None:
        headers = message.headers or {}
        offset = headers.get("x-stream-offset")
        await message.ack()
        if not isinstance(offset, int):
            return
        if offset <= self.log.read_up_to:
            return
        self.index(
            offset,
            own_headers(headers),
            lambda: from_message(message.body, headers, message.content_type),
        )
