"""The RabbitMQ broker: a durable headers exchange per broker, published to with
publisher confirms.

``publish`` returns once RabbitMQ confirmed every message of the batch (for quorum
queues: written to a majority), so a 202 means the event is in RabbitMQ. A message
that no queue took comes back (``mandatory``): counted as a ``no-trigger`` drop when
no trigger's filter wants it, and refused with ``StoreError`` (503) when one does,
because then that trigger's queue is missing (deleted while running) and the task
``rabbitmq connect <broker>`` is re-declaring it.

Connection: our own loop, not ``connect_robust``, so readiness is visible and the
topology is declared again from the manifests after every reconnect. While
RabbitMQ is unreachable ``publish`` raises ``StoreError`` and ``status().ready`` is
false; the loop reconnects with backoff and checks every :data:`CHECK_PERIOD` that
each trigger's queue still exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import AMQPError, ChannelClosed
from aiormq.abc import DeliveredMessage

from brokers.rabbitmq.binding import to_message
from brokers.rabbitmq.config import RabbitSettings
from brokers.rabbitmq.dlq import RabbitDeadLetters
from brokers.rabbitmq.subscription import RabbitSubscription
from brokers.support import Backoff, describe, merged_drops, publish_once, redact, refresh_backlogs
from eventing.broker.base import BrokerStatus, BrokerTask, DeadLetterQueue, Filter
from eventing.broker.dedup import Deduplicator
from eventing.broker.index import Router
from eventing.errors import StoreError
from eventing.events import Event

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 15.0
CHECK_PERIOD = 2.0
DEPTH_PERIOD = 1.0
ERRORS = (AMQPError, OSError, TimeoutError, ConnectionError)


class RabbitBroker:
    durable = True

    def __init__(self, key: str, broker_class: str, settings: RabbitSettings, process: str) -> None:
        self.key = key
        self.broker_class = broker_class
        self.settings = settings
        self.process = process
        self.subscriptions: dict[str, RabbitSubscription] = {}
        self.dlq = RabbitDeadLetters(self)
        self.dead_letters: DeadLetterQueue | None = self.dlq
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.exchange: AbstractExchange | None = None
        self.probe: AbstractChannel | None = None
        self.generation = 0
        self._ready = False
        self._error: str | None = "not connected yet"
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._acks: list[Any] = []
        self._ack_wake = asyncio.Event()
        self._drops: dict[tuple[str, str], int] = {}
        self.router = Router()
        """The attached triggers' filters (publish counts drops and detects missing
        queues through it): a trigger joins when its queue is first bound."""
        self.dedup = Deduplicator()
        """Per process, in memory: see docs/brokers.md for what that guarantees."""

    # -- lifecycle ------------------------------------------------------------------

    def subscribe(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> RabbitSubscription:
        sub = RabbitSubscription(self, trigger, event_filter, dict(exact or {}))
        self.subscriptions[trigger] = sub
        return sub

    async def refilter(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> None:
        """The queue stays, and with it the backlog. The filter runs again on consume, so
        the new filter also decides for messages already queued (as Knative's RabbitMQ
        broker, which filters at dispatch); a changed ``exact`` is rebound."""
        sub = self.subscriptions[trigger]
        sub.filter = event_filter
        if sub.attached:
            self.router.add(trigger, event_filter)  # replaced, its counts carry on
        new = dict(exact or {})
        if new != sub.exact:
            old, sub.exact = sub.exact, new
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await sub.rebind(old)
            except ERRORS as exc:  # the next reconnect binds sub.exact
                logger.warning("trigger %s: rebinding failed: %s", trigger, describe(exc))
                self._lost.set()

    async def unsubscribe(self, trigger: str) -> None:
        """Forget the trigger and delete its queue (its backlog)."""
        sub = self.subscriptions.pop(trigger, None)
        if sub is None:
            return
        self.router.remove(trigger)
        await self._flush_acks()  # acks of its last deliveries, on its own channel
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await sub.detach()
                if self.channel is not None:
                    await self.channel.queue_delete(sub.queue_name)
        except ERRORS as exc:
            logger.warning("broker %s: cannot delete queue %s: %s", self.key, sub.queue_name,
                           describe(exc))  # fmt: skip

    def attached(self, sub: RabbitSubscription) -> None:
        """``sub``'s queue is being bound for the first time: publish routes to it
        from now on (before, a message for it would come back unrouted and be
        refused as if its queue were missing)."""
        if self.subscriptions.get(sub.trigger) is sub:
            self.router.add(sub.trigger, sub.filter)

    def trigger_tasks(self, trigger: str) -> list[BrokerTask]:
        sub = self.subscriptions[trigger]

        async def bind() -> None:
            await self._attach_late(sub)

        return [(f"rabbitmq bind {trigger}", bind)]

    async def _attach_late(self, sub: RabbitSubscription) -> None:
        """Declare, bind and consume the queue of a trigger subscribed while connected
        (the connection loop does it for every trigger on each (re)connect)."""
        while True:
            await self._connected.wait()
            connection, exchange = self.connection, self.exchange
            if (
                not sub.attached
                and sub.trigger in self.subscriptions
                and connection is not None
                and exchange is not None
            ):
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await sub.attach(connection, exchange, self.generation)
            await asyncio.sleep(CHECK_PERIOD)

    async def open(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self._connect()
        except ERRORS as exc:
            self._error = describe(exc)
            logger.warning("broker %s: RabbitMQ unreachable (%s); retrying", self.key, self._error)
            await self._disconnect()

    async def close(self) -> None:
        await self._flush_acks()
        self._ready = False
        await self._disconnect()

    def tasks(self) -> list[BrokerTask]:
        return [
            (f"rabbitmq connect {self.key}", self._keep_connected),
            (f"rabbitmq acks {self.key}", self._ack_loop),
            (f"rabbitmq depth {self.key}", self._read_depth),
            (f"rabbitmq dlq {self.key}", self.dlq.tail),
            *(t for trigger in self.subscriptions for t in self.trigger_tasks(trigger)),
        ]

    async def _connect(self) -> None:
        s = self.settings
        connection = await aio_pika.connect(
            s.url,
            timeout=CONNECT_TIMEOUT,
            client_properties={"connection_name": f"eventing {self.process} {self.key}"},
        )
        self.connection = connection
        self._lost.clear()
        connection.close_callbacks.add(lambda *_: self._on_lost())
        channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
        channel.close_callbacks.add(lambda *_: self._on_lost())
        self.exchange = await channel.declare_exchange(
            s.exchange, aio_pika.ExchangeType.HEADERS, durable=True
        )
        await channel.declare_queue(
            s.dead_letter_queue, durable=True, arguments={"x-queue-type": "stream"}
        )
        self.channel = channel
        self.probe = await connection.channel(publisher_confirms=False)
        self.generation += 1
        for sub in list(self.subscriptions.values()):
            await sub.attach(connection, self.exchange, self.generation)
        self._ready = True
        self._error = None
        self._connected.set()
        logger.info("broker %s: connected to RabbitMQ, exchange %s", self.key, s.exchange)

    def _on_lost(self) -> None:
        self._ready = False
        self._lost.set()

    async def _disconnect(self) -> None:
        connection = self.connection
        self.connection = self.channel = self.exchange = self.probe = None
        self._connected.clear()
        if connection is not None:
            try:
                async with asyncio.timeout(5):
                    await connection.close()
            except Exception as exc:  # closing a broken connection: nothing to keep
                logger.debug("closing a RabbitMQ connection: %s", describe(exc))

    async def _keep_connected(self) -> None:
        backoff = Backoff()
        while True:
            if self.connection is not None and not self._lost.is_set():
                try:
                    async with asyncio.timeout(CHECK_PERIOD):
                        await self._lost.wait()
                except TimeoutError:
                    if await self._topology_intact():
                        continue
                self._error = self._error or "connection lost"
                logger.warning("broker %s: %s; reconnecting", self.key, self._error)
                self._ready = False
                await self._disconnect()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self._connect()
                backoff.reset()
            except ERRORS as exc:
                self._ready = False
                self._error = describe(exc)
                await self._disconnect()
                await asyncio.sleep(backoff.next())

    async def _topology_intact(self) -> bool:
        """Every trigger's queue still exists (a passive declare each)."""
        for sub in list(self.subscriptions.values()):
            if not sub.attached:
                continue  # its bind task declares it
            try:
                await sub.depth_now()
            except ChannelClosed as exc:
                self._error = f"queue {sub.queue_name} is gone: {describe(exc)}"
                return False
            except ERRORS as exc:
                self._error = describe(exc)
                return False
        return True

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    # -- acks ---------------------------------------------------------------------------

    def queue_ack(self, message: Any) -> None:
        self._acks.append(message)
        self._ack_wake.set()

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        acks, self._acks = self._acks, []
        for message in acks:
            try:
                await message.ack()
            except ERRORS as exc:  # its channel is gone: RabbitMQ redelivers it
                logger.debug("ack lost with its channel: %s", describe(exc))

    # -- the data path ----------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> None:
        await publish_once(self.dedup, events, self._publish, self._drops)

    async def _publish(self, events: Sequence[Event]) -> None:
        # A trigger whose queue is not bound yet (added a moment ago) takes nothing yet:
        # it is not in the router until then (attached).
        routes = [self.router.route(e) for e in events]
        results = await self.send(self.settings.exchange, events)
        for (matched, _), result in zip(routes, results, strict=True):
            if matched and isinstance(result, DeliveredMessage):  # no queue took it
                self._lost.set()  # a trigger's queue is missing: re-declare it
                error = StoreError(f"broker {self.key}: queues of {list(matched)} are missing")
                error.retry_after = 2.0
                raise error
        self.router.record(routes)  # counted once accepted, as the embedded class does

    async def send(
        self, exchange: str, events: Sequence[Event], extra: Mapping[str, str] | None = None
    ) -> list[Any]:
        """Publish to ``exchange`` ("" is the default exchange, routing to a queue by
        name: ``extra["routing-key"]``) and wait for every confirm."""
        channel, target = self.channel, self.exchange
        if not self._ready or channel is None or target is None:
            error = StoreError(f"broker {self.key}: RabbitMQ is unreachable ({self._error})")
            error.retry_after = 5.0
            raise error
        routing_key = ""
        headers = dict(extra or {})
        if exchange != self.settings.exchange:
            target = channel.default_exchange
            routing_key = headers.pop("routing-key")
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                return list(
                    await asyncio.gather(
                        *(
                            target.publish(
                                aio_pika.Message(
                                    **to_message(e, headers),
                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                ),
                                routing_key=routing_key,
                                mandatory=True,
                            )
                            for e in events
                        )
                    )
                )
        except ERRORS as exc:
            self._error = describe(exc)
            error = StoreError(f"broker {self.key}: RabbitMQ did not confirm: {self._error}")
            error.retry_after = 2.0
            raise error from exc

    async def replay(self, trigger: str, event: Event) -> None:
        sub = self.subscriptions[trigger]
        await self.send("", [event], {"routing-key": sub.queue_name})

    def drops(self) -> Mapping[tuple[str, str], int]:
        own = self.router.drops()
        for key, n in self._drops.items():
            own[key] = own.get(key, 0) + n
        return merged_drops(own, self.subscriptions.values())

    def status(self) -> BrokerStatus:
        return BrokerStatus(
            ready=self._ready,
            detail=None if self._ready else redact(self._error or ""),
            extra={
                "exchange": self.settings.exchange,
                "deadLetterQueue": self.settings.dead_letter_queue,
                "dedupKeys": self.dedup.remembered(),
            },
        )

    async def _read_depth(self) -> None:
        """Keep every trigger's cached backlog (its queue's depth) fresh."""
        await refresh_backlogs(self._connected, self.subscriptions, ERRORS, DEPTH_PERIOD, logger)
