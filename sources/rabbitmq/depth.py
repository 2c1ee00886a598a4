"""RabbitMQ queue depth as a scaling input (KEDA's ``rabbitmq`` scaler, QueueLength
mode). :func:`depth` is the pure computation; :class:`RabbitmqQueueDepth` probes.

What counts: by default **ready + unacknowledged** (``messages`` in the management
API; KEDA's default): a message a consumer holds but has not acknowledged is still
work, and a consumer that dies returns it to the queue. ``exclude_unacknowledged``
counts ready messages only (KEDA's ``excludeUnacknowledged``).

How it is read, in order of preference:

- **management API** (``GET /api/queues/<vhost>/<queue>``): ready and unacknowledged
  counts. RabbitMQ samples them every ``collect_statistics_interval`` (5 s by
  default, 1 s on the servers of scripts/servers), so a reading can be that old. A
  queue so new it has no statistics yet reads 0.
- **AMQP passive declare**, when no management URL is given: ``message_count`` of
  Queue.DeclareOk, which is **ready messages only** (unacknowledged ones are not
  visible over AMQP), but is exact at the instant of the call.

Activity: depth above ``activation_value`` (KEDA's ``activationValue``, default 0).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import aiohttp
from aio_pika.exceptions import AMQPError

from eventing.autoscaler.observe import MetricSample
from eventing.errors import SourceError
from sources.support.reconnect import close_quietly, describe, redact

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    ready: int
    unacknowledged: int


def depth(counts: QueueCounts, *, exclude_unacknowledged: bool = False) -> int:
    return counts.ready + (0 if exclude_unacknowledged else counts.unacknowledged)


class RabbitmqQueueDepth:
    """``MetricSource`` for one queue: one probe returns value and activity together."""

    def __init__(
        self,
        queue: str,
        *,
        management_url: str | None = None,
        amqp_url: str | None = None,
        vhost: str = "/",
        exclude_unacknowledged: bool = False,
        activation_value: float = 0.0,
        timeout: float = 5.0,
    ) -> None:
        if management_url is None and amqp_url is None:
            raise ValueError("give a management_url or an amqp_url")
        self.queue = queue
        self.vhost = vhost
        self.exclude_unacknowledged = exclude_unacknowledged and management_url is not None
        self.activation_value = activation_value
        self._timeout = timeout
        self._management_url = management_url
        self._amqp_url = amqp_url
        self._http: aiohttp.ClientSession | None = None
        self._connection: Any = None

    async def read(self) -> MetricSample:
        counts = await self.counts()
        value = depth(counts, exclude_unacknowledged=self.exclude_unacknowledged)
        return MetricSample(float(value), value > self.activation_value)

    async def counts(self) -> QueueCounts:
        try:
            if self._management_url is not None:
                return await self._from_management(self._management_url)
            return await self._from_amqp(self._amqp_url or "")
        except (aiohttp.ClientError, AMQPError, OSError, TimeoutError) as exc:
            await self.close()
            raise SourceError(
                f"cannot read depth of queue {self.queue!r}: {describe(exc)}"
            ) from exc

    async def _from_management(self, base: str) -> QueueCounts:
        parts = urlsplit(base)
        headers = {}
        if parts.username is not None:
            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode())
            headers["Authorization"] = "Basic " + token.decode("ascii")
        host = parts.hostname or ""
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        root = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        url = f"{root}/api/queues/{quote(self.vhost, safe='')}/{quote(self.queue, safe='')}"
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        async with self._http.get(url, headers=headers) as response:
            if response.status == 404:
                raise SourceError(f"queue {self.queue!r} does not exist in vhost {self.vhost!r}")
            if response.status != 200:
                raise SourceError(f"management API answered {response.status} for {redact(url)}")
            body = await response.json()
        return QueueCounts(
            int(body.get("messages_ready", 0) or 0),
            int(body.get("messages_unacknowledged", 0) or 0),
        )

    async def _from_amqp(self, url: str) -> QueueCounts:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(url, timeout=self._timeout)
        channel = await self._connection.channel()
        try:
            queue = await channel.declare_queue(self.queue, passive=True)
            count = queue.declaration_result.message_count
        finally:
            if not channel.is_closed:
                await channel.close()
        return QueueCounts(int(count or 0), 0)

    async def close(self) -> None:
        http, connection = self._http, self._connection
        self._http = self._connection = None
        if http is not None:
            await close_quietly(http.close, log)
        if connection is not None:
            await close_quietly(connection.close, log)
