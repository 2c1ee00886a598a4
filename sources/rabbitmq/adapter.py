"""RabbitmqSource adapter (aio-pika): consume a queue and put each message into the
broker as a CloudEvent, acknowledging only what the broker stored.

At-least-once, step by step: deliveries arrive (at most ``parallelism`` unacknowledged,
the channel's prefetch) into a local inbox; the loop takes what is there as one batch,
decodes it (pure, :mod:`sources.rabbitmq.binding`), hands it to ``emit`` and only then
acks (one ``multiple`` ack for the batch). If ``emit`` raises (``StoreError``: the
broker is full or unavailable), the batch is nacked with requeue, and the source
waits (jittered backoff) before taking more. When the store fills part-way through a
batch, the prefix that fit is acked and only the rest is nacked
(:func:`sources.support.emitting.emit_prefix`). A lost connection drops the inbox: the
unacknowledged deliveries go back to the queue on the server's side.

Messages that cannot become events (over the size limit, or claiming to be a
CloudEvent but invalid) are refused: nacked without requeue, which dead-letters them
when the queue has a dead-letter exchange (``x-dead-letter-exchange``) and drops them
otherwise; either way counted in ``health.refused``.

Topology, declared at the top of every session: with ``predeclared: true`` the queue
must exist (passive declare, nothing created); otherwise the exchange
(``exchangeName``, durable, type ``topic``), the durable queue and a binding with
routing key ``#`` (every message) are declared. An existing exchange of another type
is an error shown in ``health``: declare it yourself and use ``predeclared: true``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from eventing.errors import InvalidEventError
from eventing.events import Event
from sources.rabbitmq.binding import AmqpMessage, message_to_event
from sources.rabbitmq.model import RabbitmqSourceResource
from sources.support.base import Emit, SourceHealth
from sources.support.emitting import emit_prefix, refuse, too_large
from sources.support.reconnect import Backoff, close_quietly, describe, keep_connected
from sources.support.source_spec import source_path

log = logging.getLogger(__name__)

MODEL = RabbitmqSourceResource
CONNECT_TIMEOUT: Final = 10.0
IDLE_CHECK: Final = 5.0
TRANSIENT: Final = (AMQPError, ChannelInvalidStateError, OSError, TimeoutError)


class _Closed:
    """Put in the inbox when the connection or channel closes."""

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


class RabbitmqAdapter:
    """The running form of one ``RabbitmqSource``."""

    def __init__(self, resource: RabbitmqSourceResource, *, url: str | None = None) -> None:
        self.resource = resource
        self.name = f"rabbitmqsource/{resource.key}"
        self.health = SourceHealth(self.name, "RabbitmqSource")
        self._url = url or resource.url()
        self._queue = resource.config.queue_name
        self._prefetch = resource.config.parallelism
        self._source_prefix = source_path(resource.namespace, "rabbitmqsources", resource.name)
        self._limit = resource.max_message_bytes
        self._store_backoff = Backoff(initial=0.1, maximum=5.0)

    async def run(self, emit: Emit) -> None:
        backoff = Backoff()

        async def session() -> None:
            await self._session(emit, backoff)

        await keep_connected(self.health, session, transient=TRANSIENT, backoff=backoff, log=log)

    async def _session(self, emit: Emit, backoff: Backoff) -> None:
        inbox: asyncio.Queue[AbstractIncomingMessage | _Closed] = asyncio.Queue()

        def closed(_sender: Any, exc: BaseException | None = None) -> None:
            inbox.put_nowait(_Closed(exc))

        async def deliver(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(message)  # bounded by the prefetch

        connection = await aio_pika.connect(
            self._url, timeout=CONNECT_TIMEOUT, client_properties={"connection_name": self.name}
        )
        try:
            connection.close_callbacks.add(closed)
            channel = await connection.channel()
            channel.close_callbacks.add(closed)
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await self._declare(channel)
            await queue.consume(deliver, no_ack=False)
            self.health.set_state("connected")
            backoff.reset()
            while True:
                batch = await self._take(inbox)
                if batch:
                    await self._handle(batch, emit)
                else:  # idle: is the queue still there (a deleted queue cancels us)?
                    await channel.declare_queue(self._queue, passive=True)
        finally:
            await close_quietly(connection.close, log)

    async def _declare(self, channel: AbstractChannel) -> AbstractQueue:
        config = self.resource.config
        if config.predeclared:
            return await channel.declare_queue(self._queue, passive=True)
        exchange = await channel.declare_exchange(
            config.exchange_name or "", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self._queue, durable=True)
        await queue.bind(exchange, routing_key="#")
        return queue

    async def _take(
        self, inbox: asyncio.Queue[AbstractIncomingMessage | _Closed]
    ) -> list[AbstractIncomingMessage]:
        """Wait for one delivery, then take every one already waiting (one batch); an
        empty batch after :data:`IDLE_CHECK` seconds without deliveries."""
        batch: list[AbstractIncomingMessage] = []
        try:
            async with asyncio.timeout(IDLE_CHECK):
                item = await inbox.get()
        except TimeoutError:
            return batch
        while True:
            if isinstance(item, _Closed):
                reason = f": {describe(item.exc)}" if item.exc else ""
                raise ConnectionError(f"connection to RabbitMQ closed{reason}")
            batch.append(item)
            if inbox.empty() or len(batch) >= self._prefetch:
                return batch
            item = inbox.get_nowait()

    async def _handle(self, batch: list[AbstractIncomingMessage], emit: Emit) -> None:
        items: list[tuple[AbstractIncomingMessage, Event]] = []
        for message in batch:
            self.health.received += 1
            event = self._decode(message)
            if event is None:
                await message.nack(requeue=False)
            else:
                items.append((message, event))
        if not items:
            return
        outcome = await emit_prefix(emit, items, self.health, log)
        for message in outcome.refused:
            await message.nack(requeue=False)
        refused = {id(m) for m in outcome.refused}
        stored = [m for m, _ in items[: outcome.stored] if id(m) not in refused]
        if stored:  # every earlier delivery of the batch is settled by now
            await stored[-1].ack(multiple=len(stored) > 1)
        if outcome.error is None:
            self._store_backoff.reset()
            return
        # StoreError above all: hand the rest back (requeue), then wait
        await items[-1][0].nack(requeue=True, multiple=True)
        error = describe(outcome.error)
        self.health.last_error = f"emit failed: {error}"
        delay = self._store_backoff.next()
        log.warning("%s: emit failed (%s); retrying in %.1fs", self.name, error, delay)
        await asyncio.sleep(delay)

    def _decode(self, message: AbstractIncomingMessage) -> Event | None:
        """Delivery -> Event, or None when refused (counted)."""
        where = f"message {message.delivery_tag} from queue {self._queue!r}"
        error = too_large(len(message.body), self._limit)
        if error is not None:
            refuse(self.health, log, f"{where} refused", error)
            return None
        amqp = AmqpMessage(
            body=message.body,
            headers=message.headers or {},
            content_type=message.content_type,
            message_id=message.message_id,
            timestamp=message.timestamp,
            correlation_id=message.correlation_id,
            app_id=message.app_id,
            type=message.type,
            exchange=message.exchange or "",
            routing_key=message.routing_key or "",
        )
        try:
            return message_to_event(amqp, self._source_prefix, self._queue)
        except InvalidEventError as exc:
            refuse(self.health, log, f"{where} is not a valid CloudEvent", exc)
            return None


def build(resource: RabbitmqSourceResource) -> RabbitmqAdapter:
    """Construct the adapter for a validated ``RabbitmqSource`` (composition root)."""
    return RabbitmqAdapter(resource)
