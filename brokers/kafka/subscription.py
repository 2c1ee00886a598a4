"""One trigger on a Kafka broker: a consumer group of its own, filters after consume,
and commits of only the contiguous prefix of done records.

The consume loop (task ``kafka consume <trigger>``) reads the broker's topic,
decodes each record, applies the trigger's filter (a rejected record is done at
once), and queues the rest as deliveries whose receipt is (partition, offset,
assignment epoch). It pauses its partitions while :attr:`buffer` deliveries wait, so
a slow subscriber holds records in Kafka, not in memory. Acks and dead letters mark
records done in an :class:`~brokers.kafka.tracker.OffsetTracker`; the loop commits
the moved commit points every :data:`COMMIT_PERIOD`, and synchronously when the
group takes partitions away (``on_partitions_revoked``), so the next owner starts
exactly after what this process finished. An ack that arrives after its partition
was revoked is ignored (the epoch moved on): the new owner delivers it again, which
at-least-once allows.

Several processes given the same manifests join the same group and share the
partitions; one that dies causes a rebalance, and its uncommitted records are read
again by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from brokers.kafka.binding import read_record
from brokers.kafka.tracker import OffsetTracker
from brokers.support import Backoff, describe
from eventing.broker.base import Delivery, Filter, Receipt
from eventing.broker.deadletter_log import new_meta
from eventing.delivery.stamps import arrival
from eventing.errors import InvalidEventError
from eventing.events import Event
from eventing.settle import uncut

if TYPE_CHECKING:
    from brokers.kafka.broker import KafkaBroker

logger = logging.getLogger(__name__)

COMMIT_PERIOD = 0.2
FETCH_TIMEOUT_MS = 200
MAX_RECORDS = 500


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sub: KafkaSubscription) -> None:
        self.sub = sub

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.sub.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.sub.assigned(set(assigned))


class KafkaSubscription:
    def __init__(self, broker: KafkaBroker, trigger: str, event_filter: Filter) -> None:
        self.broker = broker
        self.trigger = trigger
        self.filter = event_filter
        self.group = broker.settings.group(trigger)
        self.initial_offset = "earliest"
        self._unanchored: set[Any] = set()
        """Where a group without committed offsets starts ("latest" for a trigger
        added while running)."""
        self.buffer = broker.settings.buffer
        self.listeners: list[Callable[[], None]] = []
        self.drops: dict[tuple[str, str], int] = {}
        self.tracker = OffsetTracker()
        self._ready: deque[Delivery] = deque()
        self._wake = asyncio.Event()
        self._push: Callable[[], None] | None = None
        """The dispatcher's hook when it takes deliveries with :meth:`take_nowait`."""
        self._drained = asyncio.Event()
        """Set by :meth:`get` when a paused consumer's queue is down to half."""
        self._epochs: dict[Any, int] = {}
        self._next_epoch = 0
        self._consumer: Any = None
        self._paused = False
        self._last_commit = 0.0
        self._backlog = 0
        self._local = 0
        self._coordinator: int | None = None

    # -- Subscription -----------------------------------------------------------------

    async def get(self) -> Delivery:
        while not self._ready:
            self._wake.clear()
            await self._wake.wait()
        delivery = self._ready.popleft()
        if self._paused and len(self._ready) <= self.buffer // 2:
            self._drained.set()
        return delivery

    def push_to(self, ready: Callable[[], None]) -> bool:
        """Call ``ready`` once per delivery queued (instead of waking :meth:`get`; the
        dispatcher takes as many as it was offered); it takes them with
        :meth:`take_nowait` in its pump round, without a task switch and two awaits
        per event."""
        self._push = ready
        return True

    def take_nowait(self) -> Delivery | None:
        if not self._ready:
            return None
        delivery = self._ready.popleft()
        if self._paused and len(self._ready) <= self.buffer // 2:
            self._drained.set()
        return delivery

    def ack(self, receipt: Receipt) -> None:
        tp, offset, epoch = cast(tuple[Any, int, int], receipt)
        if self._epochs.get(tp) == epoch:
            self.tracker.done(tp, offset)

    async def dead_letter(
        self, receipt: Receipt, event: Event, *, attempts: int, reason: str, status: int | None
    ) -> None:
        await self.broker.dlq.append(event, new_meta(self.trigger, attempts, reason, status))
        self.ack(receipt)

    async def backlog(self) -> int:
        """The group's lag over every partition of the topic: end offset minus the
        committed offset (the whole partition when the group never committed)."""
        ends = await self.broker.end_offsets()
        if ends is None:
            return self._backlog
        return await self.read_lag(ends)

    async def read_lag(self, ends: dict[Any, int]) -> int:
        """:meth:`backlog` given the topic's end offsets (the broker's lag task reads
        them once for all its triggers). One request: the group's coordinator is
        remembered until a read fails."""
        admin = self.broker.admin
        if admin is None or not ends:
            return self._backlog
        tps = list(ends)
        try:
            if self._coordinator is None:
                self._coordinator = await admin.find_coordinator(self.group)
            committed = await admin.list_consumer_group_offsets(
                self.group, self._coordinator, partitions=tps
            )
        except Exception:
            self._coordinator = None  # moved, or the cluster changed: look it up again
            raise
        total = local = 0
        for tp in tps:
            meta = committed.get(tp)
            start = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag = max(0, ends.get(tp, 0) - start)
            total += lag
            if tp in self._epochs:  # assigned to this process
                local += lag
        self._backlog = total
        self._local = local if self._epochs else total  # nothing assigned yet: all of it
        return total

    def cached_backlog(self) -> int:
        return self._backlog

    def local_backlog(self) -> int:
        return self._local

    # -- the consume loop -------------------------------------------------------------

    async def run(self) -> None:
        """Consume until cancelled; reconnects with backoff on its own."""
        backoff = Backoff()
        while True:
            await self.broker.wait_connected()
            consumer = AIOKafkaConsumer(
                bootstrap_servers=list(self.broker.settings.bootstrap_servers),
                group_id=self.group,
                client_id=self.broker.client_id(f"c-{self.trigger}"),
                enable_auto_commit=False,
                auto_offset_reset=self.initial_offset,
                max_poll_interval_ms=3_600_000,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
            )
            consumer.subscribe([self.broker.settings.topic], listener=_Rebalance(self))
            try:
                await uncut(consumer.start())
                self._consumer = consumer
                backoff.reset()
                await self._consume(consumer)
            except (KafkaError, OSError) as exc:
                logger.warning("trigger %s: Kafka consumer: %s", self.trigger, describe(exc))
            finally:
                self._consumer = None
                await self._stop(consumer)
            await asyncio.sleep(backoff.next())

    async def _stop(self, consumer: Any) -> None:
        try:
            async with asyncio.timeout(10):
                await self._commit(consumer, None)
        except (KafkaError, OSError, TimeoutError, CommitFailedError) as exc:
            logger.info("trigger %s: last commit failed: %s", self.trigger, describe(exc))
        try:
            async with asyncio.timeout(10):
                await consumer.stop()
        except Exception as exc:  # a broken consumer: nothing left to keep
            logger.debug("stopping a Kafka consumer: %s", describe(exc))
        self._forget_all()

    async def _consume(self, consumer: Any) -> None:
        while True:
            if self._unanchored:
                await self._anchor(consumer)
            if self._flow(consumer):
                # Paused: wait until half the buffer is delivered (not a fetch
                # timeout: a paused fetch returns nothing only after it), then resume.
                self._drained.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FETCH_TIMEOUT_MS / 1000):
                        await self._drained.wait()
                if time.monotonic() - self._last_commit >= COMMIT_PERIOD:
                    await self._commit(consumer, None)
                continue
            batch = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS)
            queued = len(self._ready)
            for tp, records in batch.items():
                epoch = self._epochs.get(tp)
                if epoch is None:
                    continue  # revoked while this batch was in the air
                self.tracker.consumed_many(tp, [record.offset for record in records])
                for record in records:
                    foreign = self._take(tp, epoch, record)
                    if foreign is not None:
                        await self._not_a_cloudevent(tp, record, foreign)
            added = len(self._ready) - queued
            if added > 0:
                push = self._push
                if push is None:
                    self._wake.set()  # once per batch, not per record
                else:  # the Pushing contract: one call per event queued
                    for _ in range(added):
                        push()
            if time.monotonic() - self._last_commit >= COMMIT_PERIOD:
                await self._commit(consumer, None)

    def _flow(self, consumer: Any) -> bool:
        """Pause fetching while :attr:`buffer` deliveries wait; resume once half of
        them are delivered. True while paused."""
        waiting = len(self._ready)
        if waiting >= self.buffer and not self._paused:
            consumer.pause(*consumer.assignment())
            self._paused = True
        elif waiting <= self.buffer // 2 and self._paused:
            consumer.resume(*consumer.assignment())
            self._paused = False
        return self._paused

    def _take(self, tp: Any, epoch: int, record: Any) -> str | None:
        """Queue one record's delivery (or mark it done: another trigger's replay, or
        filtered out). Synchronous, so a fetched batch is taken without a suspension
        per record; returns why a record is not a CloudEvent, for the caller to
        dead-letter it. The caller marked the batch's offsets consumed."""
        offset = record.offset
        try:
            event = read_record(record.value, record.headers or (), self.trigger)
        except InvalidEventError as exc:
            return str(exc)
        if event is None:  # a replay for another trigger
            self.tracker.done(tp, offset)
            return None
        dropped = self.filter(event.attributes)
        if dropped is not None:  # counted by the publisher, unless it is not here
            self.tracker.done(tp, offset)
            if self.broker.filtered_at_consume:
                key = (self.trigger, dropped)
                self.drops[key] = self.drops.get(key, 0) + 1
            return None
        for listener in self.listeners:
            listener()
        event.arrived = arrival(event) or 0.0  # read once here, not by every stage
        self._ready.append(Delivery(event, (tp, offset, epoch)))
        return None

    async def _not_a_cloudevent(self, tp: Any, record: Any, why: str) -> None:
        """Dead-letter a foreign record with the reason; never a crash loop."""
        p, o = tp.partition, record.offset
        wrapped = Event(
            {
                "specversion": "1.0",
                "id": f"{tp.topic}/{p}/{o}",
                "source": f"/kafka/{tp.topic}",
                "type": "dev.knative.kafka.event",
                "datacontenttype": "application/octet-stream",
            },
            record.value,
        )
        reason = f"not a CloudEvent: {why}"[:512]
        logger.warning("trigger %s: record %s/%s/%s %s", self.trigger, tp.topic, p, o, reason)
        try:
            await self.broker.dlq.append(wrapped, new_meta(self.trigger, 0, reason, None))
        except Exception as exc:
            raise KafkaError(f"cannot dead-letter a foreign record: {describe(exc)}") from exc
        self.tracker.done(tp, record.offset)
        key = (self.trigger, "not-a-cloudevent")
        self.drops[key] = self.drops.get(key, 0) + 1

    async def _commit(self, consumer: Any, partitions: set[Any] | None) -> None:
        self._last_commit = time.monotonic()
        points = self.tracker.to_commit(partitions)
        if not points:
            return
        await consumer.commit(points)
        self.tracker.committed(points)

    # -- rebalancing --------------------------------------------------------------------

    async def _anchor(self, consumer: Any) -> None:
        """A group that starts at the end ("latest") commits that position for every
        partition it never committed on, so its lag (the backlog) counts from where it
        started, not from the beginning of a partition no event came to since."""
        partitions, self._unanchored = self._unanchored, set()
        points = {}
        for tp in partitions:
            if tp in self._epochs and await consumer.committed(tp) is None:
                points[tp] = await consumer.position(tp)
        if points:
            await consumer.commit(points)

    def assigned(self, partitions: set[Any]) -> None:
        if self.initial_offset == "latest":
            self._unanchored |= set(partitions)
        for tp in partitions:
            self._next_epoch += 1
            self._epochs[tp] = self._next_epoch
        self._paused = False

    async def revoked(self, partitions: set[Any]) -> None:
        """Commit what is finished on the partitions leaving us, synchronously, then
        forget their records (queued ones are the next owner's to deliver)."""
        consumer = self._consumer
        if consumer is not None and partitions:
            try:
                await self._commit(consumer, partitions)
            except (KafkaError, CommitFailedError) as exc:
                logger.info("trigger %s: commit on revoke: %s", self.trigger, describe(exc))
        for tp in partitions:
            self._epochs.pop(tp, None)
        self.tracker.forget(partitions)
        kept = [
            d for d in self._ready if cast(tuple[Any, int, int], d.receipt)[0] not in partitions
        ]
        self._ready = deque(kept)

    def _forget_all(self) -> None:
        self._epochs.clear()
        self.tracker.forget(set(self.tracker.partitions))
        self._ready.clear()
        self._paused = False
