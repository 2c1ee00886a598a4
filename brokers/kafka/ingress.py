"""A Kafka broker's topic as an ingress worker publishes to it: its own idempotent
producer (``acks=all``), the same record binding and batching as the main process
(:class:`~brokers.kafka.producing.Producing`), and the 202 only once Kafka
acknowledged the record.

Why: with the record crossing to the main process and back, the main process paid for
the produce and both ends paid for the hop on every event, while the main process also
consumes and delivers every trigger's records. Produced here, the main process is left
to consume and deliver. What the main process still produces (sources, replies,
replays, dead letters) it produces itself.

While Kafka is unreachable (at start or later) :meth:`publish` raises
:class:`StoreError` with ``Retry-After`` (the worker answers 503) and the task
``kafka producer <broker>`` reconnects with backoff; it also checks the cluster every
:data:`CHECK_PERIOD` seconds and starts a new producer when the check fails.
Deduplication of ingress events needs one window per broker, so a broker that
deduplicates them keeps publishing through the main process (the composition root
decides, :mod:`eventing.app.ingress_direct`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from aiokafka.errors import KafkaError

from brokers.kafka.config import KafkaSettings
from brokers.kafka.producing import PUBLISH_TIMEOUT, Producing
from brokers.support import Backoff, describe
from eventing.errors import StoreError
from eventing.events import Event

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
CHECK_PERIOD = 2.0
KIND = "kafka"

Done = Callable[[StoreError | None], None]


def worker_spec(key: str, settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    """What a worker needs to produce to ``key``'s topic (plain JSON values)."""
    return {"kind": KIND, "key": key, "clientId": client_id, "settings": asdict(settings)}


class IngressProducer:
    """A :class:`~eventing.broker.base.Publisher` for an ingress worker's process."""

    broker_class = "Kafka"
    durable = True

    def __init__(
        self, key: str, settings: KafkaSettings, client_id: str, timeout: float = PUBLISH_TIMEOUT
    ) -> None:
        self.key = key
        self.producing = Producing(key, settings, client_id)
        self.timeout = min(timeout, PUBLISH_TIMEOUT)
        """The produce's deadline: never longer than the worker's answer deadline."""
        self.ready = False
        self._pending: list[tuple[Sequence[Event], Done]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], answer_timeout: float) -> IngressProducer:
        raw = dict(spec["settings"])
        raw["bootstrap_servers"] = tuple(str(s) for s in raw["bootstrap_servers"])
        return cls(str(spec["key"]), KafkaSettings(**raw), str(spec["clientId"]), answer_timeout)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect once (bounded; unreachable is not an error: 503 until it is), then
        keep connected in a task."""
        await self._connect()
        name = f"kafka producer {self.key}"
        self._keeper = asyncio.create_task(self._keep_connected(), name=name)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop reconnecting; let the produces in flight finish (bounded); stop."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        self.ready = False
        await self._stop_producer()

    async def _connect(self) -> bool:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self.producing.start()
                await self.producing.producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            self.ready = False
            self.producing.error = describe(exc)
            logger.warning("broker %s: Kafka unreachable (%s); retrying", self.key,
                           self.producing.error)  # fmt: skip
            await self._stop_producer()
            return False
        self.ready = True
        return True

    async def _stop_producer(self) -> None:
        try:
            await self.producing.stop()
        except Exception as exc:  # closing a broken client: nothing to keep
            logger.debug("closing a Kafka producer: %s", describe(exc))

    async def _keep_connected(self) -> None:
        backoff = Backoff()
        while True:
            if not self.ready:
                await asyncio.sleep(backoff.next())
                if await self._connect():
                    backoff.reset()
                continue
            await asyncio.sleep(CHECK_PERIOD)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self.producing.producer.client.fetch_all_metadata()
            except (KafkaError, OSError, TimeoutError, AttributeError) as exc:
                self.ready = False
                self.producing.error = describe(exc)
                logger.warning("broker %s: %s; reconnecting", self.key, self.producing.error)
                await self._stop_producer()

    # -- the data path ----------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> None:
        if not self.ready:
            raise self.producing.unreachable(self.producing.error)
        await self.producing.produce_batched(events, self.timeout)

    def publish_soon(self, events: Sequence[Event], done: Done) -> None:
        """:meth:`publish` without a task per request: what arrives in one turn of the
        event loop is produced together (one task), each request answered on its own
        through ``done``. Raises :class:`StoreError` at once while unreachable."""
        if not self.ready:
            raise self.producing.unreachable(self.producing.error)
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((events, done))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.create_task(self._publish_pending(pending), name=f"kafka produce {self.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_pending(self, pending: list[tuple[Sequence[Event], Done]]) -> None:
        error: StoreError | None = None
        try:
            await self.publish([e for events, _ in pending for e in events])
        except StoreError as exc:
            error = exc
        except Exception:  # a bug: still answer every request (503)
            logger.exception("broker %s: producing from the ingress worker failed", self.key)
            error = StoreError("internal error")
            error.retry_after = 1.0
        for _, done in pending:
            try:
                done(error)
            except Exception:  # one request's answer must not stop the others'
                logger.exception("answering an ingress request failed")

    def drops(self) -> Mapping[tuple[str, str], int]:
        return {}
