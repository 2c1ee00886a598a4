"""One trigger on a RabbitMQ broker: a durable queue (quorum by default) bound to the
broker's headers exchange.

The binding carries the trigger's exact attribute filters with ``x-match: all``, so
RabbitMQ drops what cannot match before it reaches us; every other dialect (prefix,
CESQL, ...) is applied after consume, and a rejected message is acked at once.
``prefetch`` bounds the unacknowledged messages per process. A message is acked only
after the subscriber's 2xx, or after its dead letter was confirmed stored (never ack
first and publish the dead letter second: a crash between the two would lose it).

A receipt is (connection generation, message): after a reconnect the old channel's
messages are redelivered by RabbitMQ, so an ack for an old generation is dropped.
Several processes consume the same queue; RabbitMQ spreads the messages and
redelivers the unacked ones of a process that died.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

import aiohttp
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.abc import AbstractIncomingMessage as Incoming

from brokers.rabbitmq.binding import from_message
from brokers.support import describe
from eventing.broker.base import Delivery, Filter, Receipt
from eventing.broker.deadletter_log import new_meta
from eventing.errors import InvalidEventError
from eventing.events import Event

if TYPE_CHECKING:
    from brokers.rabbitmq.broker import RabbitBroker

logger = logging.getLogger(__name__)

MANAGEMENT_TIMEOUT = 5.0


class RabbitSubscription:
    def __init__(
        self, broker: RabbitBroker, trigger: str, event_filter: Filter, exact: dict[str, str]
    ) -> None:
        self.broker = broker
        self.trigger = trigger
        self.filter = event_filter
        self.exact = exact
        self.queue_name = broker.settings.queue(trigger)
        self.listeners: list[Callable[[], None]] = []
        self.drops: dict[tuple[str, str], int] = {}
        self._ready: deque[Delivery] = deque()
        self._waiter: Any = None
        self._generation = 0
        self._unacked = 0
        self._backlog = 0
        self._consumers = 1
        self._ready_count = 0
        self._channel: AbstractChannel | None = None
        self._queue: Any = None

    @property
    def attached(self) -> bool:
        """Its queue was declared and bound at least once (a trigger added while
        running is not until the connection loop or its bind task got to it)."""
        return self._generation > 0

    async def rebind(self, old: dict[str, str]) -> None:
        """A changed ``exact`` (a refiltered trigger): bind the new headers first, then
        drop the old binding, so no message meant for the queue falls in between."""
        queue, exchange = self._queue, self.broker.exchange
        if queue is None or exchange is None:
            return  # not connected: the next attach binds self.exact
        await queue.bind(exchange, routing_key="", arguments={"x-match": "all", **self.exact})
        await queue.unbind(exchange, routing_key="", arguments={"x-match": "all", **old})

    async def detach(self) -> None:
        """Stop consuming (unacked messages go back to the queue)."""
        channel, self._channel, self._queue = self._channel, None, None
        self._ready.clear()
        if channel is not None and not channel.is_closed:
            await channel.close()

    async def attach(
        self, connection: AbstractConnection, exchange: AbstractExchange, generation: int
    ) -> None:
        """Declare the queue and its binding on a new connection and consume."""
        self._ready.clear()  # the old channel's messages come again
        self._unacked = 0
        if self._generation == 0:
            self.broker.attached(self)
        self._generation = generation
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.broker.settings.prefetch)
        queue = await channel.declare_queue(
            self.queue_name,
            durable=True,
            arguments={"x-queue-type": self.broker.settings.queue_type},
        )
        await queue.bind(exchange, routing_key="", arguments={"x-match": "all", **self.exact})
        self._channel = channel
        self._queue = queue
        await queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: Incoming) -> None:
        generation = self._generation
        try:
            event = from_message(message.body, message.headers or {}, message.content_type)
        except InvalidEventError as exc:
            await self._not_a_cloudevent(message, str(exc))
            return
        reason = self.filter(event.attributes)
        if reason is not None:  # counted by the process that published it
            self.broker.queue_ack(message)
            return
        for listener in self.listeners:
            listener()
        self._unacked += 1
        self._ready.append(Delivery(event, (generation, message)))
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _not_a_cloudevent(self, message: Incoming, why: str) -> None:
        reason = f"not a CloudEvent: {why}"[:512]
        wrapped = Event(
            {
                "specversion": "1.0",
                "id": message.message_id or f"{self.queue_name}/{message.delivery_tag}",
                "source": f"/rabbitmq/{self.broker.settings.exchange}",
                "type": "dev.knative.rabbitmq.event",
                "datacontenttype": message.content_type or "application/octet-stream",
            },
            message.body,
        )
        logger.warning("trigger %s: %s", self.trigger, reason)
        try:
            await self.broker.dlq.append(wrapped, new_meta(self.trigger, 0, reason, None))
        except Exception as exc:  # not stored: leave it unacked, RabbitMQ keeps it
            logger.error("trigger %s: cannot dead-letter: %s", self.trigger, describe(exc))
            return
        key = (self.trigger, "not-a-cloudevent")
        self.drops[key] = self.drops.get(key, 0) + 1
        self.broker.queue_ack(message)

    # -- Subscription -----------------------------------------------------------------

    async def get(self) -> Delivery:
        while not self._ready:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._ready.popleft()

    def ack(self, receipt: Receipt) -> None:
        generation, message = cast(tuple[int, Any], receipt)
        if generation == self._generation:
            self._unacked = max(0, self._unacked - 1)
            self.broker.queue_ack(message)

    async def dead_letter(
        self, receipt: Receipt, event: Event, *, attempts: int, reason: str, status: int | None
    ) -> None:
        await self.broker.dlq.append(event, new_meta(self.trigger, attempts, reason, status))
        self.ack(receipt)

    async def depth_now(self) -> int:
        """Ready messages (a passive declare); raises when the queue is gone."""
        probe = self.broker.probe
        if probe is None:
            return 0
        queue = await probe.declare_queue(self.queue_name, passive=True)
        result = queue.declaration_result
        self._consumers = max(1, int(result.consumer_count or 0))
        self._ready_count = int(result.message_count or 0)
        return self._ready_count

    async def backlog(self) -> int:
        """Ready + unacked: from the management API when configured (every process),
        else ready (a passive declare) + this process's unacked."""
        url = self.broker.settings.management_url
        if url:
            try:
                self._backlog = await self._management_depth(url)
            except aiohttp.ClientError as exc:
                logger.debug("management API: %s", describe(exc))
        else:
            self._backlog = await self.depth_now() + self._unacked
        return self._backlog

    async def _management_depth(self, url: str) -> int:
        parts = urlsplit(self.broker.settings.url)
        vhost = parts.path[1:] or "/"
        base = urlsplit(url)
        credentials = f"{base.username or 'guest'}:{base.password or 'guest'}"
        auth = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
        origin = f"{base.scheme}://{base.hostname}:{base.port or 15672}"
        api = f"{origin}/api/queues/{quote(vhost, safe='')}/{quote(self.queue_name, safe='')}"
        timeout = aiohttp.ClientTimeout(total=MANAGEMENT_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(api, headers=auth) as response,
        ):
            response.raise_for_status()
            body = await response.json()
        self._consumers = max(1, int(body.get("consumers", 0)))
        self._ready_count = int(body.get("messages_ready", 0))
        return self._ready_count + int(body.get("messages_unacknowledged", 0))

    def cached_backlog(self) -> int:
        return self._backlog

    def local_backlog(self) -> int:
        """Ready messages are shared by every consumer (one per process); the unacked
        ones here are this process's own."""
        return -(-self._ready_count // self._consumers) + self._unacked
