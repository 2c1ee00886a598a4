"""KafkaSource adapter (aiokafka): consume topics in a consumer group and put each
record into the broker as a CloudEvent, committing only what the broker stored.

At-least-once, step by step: a ``getmany`` batch is decoded (pure,
:mod:`sources.kafka.binding`), handed to ``emit``, and only after ``emit`` returned
are exactly the batch's offsets (last + 1 per partition) handed to the
:class:`~sources.kafka.commits.Committer`, which commits them in the background, one
commit at a time, while the next batch is fetched and stored. If ``emit``
raises, nothing is committed, every partition of the batch is rewound (``seek``) to
its first record, and the source backs off before fetching again, so the same records
come back. When the store fills part-way through a batch, the prefix that fit is
committed and each partition is rewound to its first unstored record
(:func:`sources.support.emitting.emit_prefix`). A failed commit or a lost connection restarts
the session: the group resumes from its last commit, so records may be emitted twice,
never lost (their ids are ``partition:<p>/offset:<o>``, so the broker can dedupe them).

Records that cannot become events (over the size limit, or claiming to be a
CloudEvent but invalid) are refused: counted, logged without payload, and committed
past, since Kafka has no per-record reject. When a partition is first assigned to a
group that never committed it, its starting position is committed at once, so the
consumer-lag metric is exact from the start (KEDA's lag of 1 forever, keda#2033).

Outages: aiokafka reconnects inside its client and neither ``getmany`` nor ``commit``
raises while the cluster is down (a commit waits for a coordinator), so ``health``
would keep saying ``connected``. The source marks itself ``reconnecting`` when an idle
probe fails or a commit waits longer than :data:`COMMIT_PATIENCE`, and ``connected``
again when records or a commit get through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from eventing.errors import ConfigError, InvalidEventError
from eventing.events import Event
from eventing.settle import uncut
from sources.kafka.binding import KafkaRecord, record_to_event
from sources.kafka.commits import Committer
from sources.kafka.model import KafkaSourceResource
from sources.support.base import Emit, SourceHealth, SourceState
from sources.support.emitting import emit_prefix, refuse, too_large
from sources.support.reconnect import Backoff, close_quietly, describe, keep_connected
from sources.support.source_spec import apply_overrides, source_path

log = logging.getLogger(__name__)

MODEL = KafkaSourceResource
BATCH: Final = 256
POLL_MS: Final = 500
PROBE_AFTER: Final = 2.0
FINAL_COMMIT_TIMEOUT: Final = 2.0
PROBE_TIMEOUT: Final = 3.0
COMMIT_PATIENCE: Final = 3.0


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers newly assigned partitions so the loop can commit their start."""

    def __init__(self, committer: Committer) -> None:
        self.pending: set[Any] = set()
        self.committer = committer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.pending.difference_update(revoked)
        # What was stored is committed before the partitions go to another member.
        try:
            await self.committer.flush()
        except (KafkaError, OSError) as exc:
            log.info("commit before a rebalance failed (%s): read again", describe(exc))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.pending.update(assigned)


class KafkaAdapter:
    """The running form of one ``KafkaSource``."""

    def __init__(self, resource: KafkaSourceResource, *, batch: int = BATCH) -> None:
        spec = resource.spec
        if spec.net.sasl.enable or spec.net.tls.enable:
            raise ConfigError(
                f"KafkaSource {resource.key}: spec.net (SASL/TLS from Kubernetes secrets) "
                "is not supported by the local runtime yet"
            )
        self.resource = resource
        self.name = f"kafkasource/{resource.key}"
        self.health = SourceHealth(self.name, "KafkaSource")
        self.batch = batch
        self._source_prefix = source_path(resource.namespace, "kafkasources", resource.name)
        self._limit = resource.max_message_bytes
        self._store_backoff = Backoff(initial=0.1, maximum=5.0)
        self._key_type = resource.key_type
        self._overrides = spec.ce_overrides

    async def run(self, emit: Emit) -> None:
        """Consume until cancelled, with ``spec.consumers`` members of the group."""
        count = self.resource.spec.consumers
        if count == 1:
            await self._member(emit)
            return
        async with asyncio.TaskGroup() as group:
            for index in range(count):
                group.create_task(self._member(emit), name=f"{self.name}/consumer-{index}")

    async def _member(self, emit: Emit) -> None:
        backoff = Backoff()

        async def session() -> None:
            await self._session(emit, backoff)

        await keep_connected(
            self.health, session, transient=(KafkaError, OSError), backoff=backoff, log=log
        )

    async def _session(self, emit: Emit, backoff: Backoff) -> None:
        spec = self.resource.spec
        consumer = AIOKafkaConsumer(
            bootstrap_servers=spec.bootstrap_servers,
            group_id=self.resource.group,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset=spec.initial_offset,
            max_poll_records=self.batch,
            retry_backoff_ms=250,
        )

        async def commit(offsets: dict[Any, int]) -> None:
            await self._commit(consumer, offsets)

        committer = Committer(commit, self.name)
        assignments = _Assignments(committer)
        consumer.subscribe(topics=list(spec.topics), listener=assignments)
        try:
            await uncut(consumer.start())
            self.health.set_state("connected")
            backoff.reset()
            idle_since = time.monotonic()
            while True:
                if assignments.pending:
                    await self._commit_start(consumer, assignments)
                batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=self.batch)
                if batches:
                    self._mark("connected")
                    await self._handle(consumer, committer, batches, emit)
                    idle_since = time.monotonic()
                elif committer.pending():
                    await committer.flush()  # idle: the last commit is done or raised
                elif time.monotonic() - idle_since > PROBE_AFTER:
                    await self._probe(consumer)
                    idle_since = time.monotonic()
        finally:
            with contextlib.suppress(Exception):  # best effort: else read again
                async with asyncio.timeout(FINAL_COMMIT_TIMEOUT):
                    await committer.flush()
            await committer.close()
            await close_quietly(consumer.stop, log)

    async def _probe(self, consumer: Any) -> None:
        """aiokafka reconnects by itself and keeps polling quietly while the cluster is
        down; an idle consumer asks for metadata now and then so ``health`` tells the
        truth. The session is kept: the client resumes when the cluster is back."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await consumer.topics()
        except (KafkaError, OSError, TimeoutError) as exc:
            self._mark("reconnecting", describe(exc))
        else:
            self._mark("connected")

    async def _commit(self, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets``. While the cluster is down aiokafka's commit waits for a
        group coordinator instead of failing, so a source under load would sit in it
        for the whole outage looking ``connected``: a commit still waiting after
        :data:`COMMIT_PATIENCE` seconds marks the source ``reconnecting`` until it
        completes (the session is kept, as with :meth:`_probe`)."""
        commit = asyncio.ensure_future(consumer.commit(offsets))
        try:
            await asyncio.wait({commit}, timeout=COMMIT_PATIENCE)
            if not commit.done():
                self._mark("reconnecting", "offset commit is waiting for the Kafka cluster")
            await commit
        finally:
            commit.cancel()  # only if we were cancelled while it was still running
        self._mark("connected")

    def _mark(self, state: SourceState, error: str | None = None) -> None:
        if self.health.state != state:
            self.health.set_state(state, error)

    async def _commit_start(self, consumer: Any, assignments: _Assignments) -> None:
        """Commit the reset position of partitions the group never committed."""
        offsets = {}
        for tp in list(assignments.pending):
            if tp in consumer.assignment() and await consumer.committed(tp) is None:
                offsets[tp] = await consumer.position(tp)
        assignments.pending.clear()
        if offsets:
            await consumer.commit(offsets)

    async def _handle(
        self,
        consumer: Any,
        committer: Committer,
        batches: dict[Any, Sequence[Any]],
        emit: Emit,
    ) -> None:
        items: list[tuple[Any, Event]] = []
        offsets: dict[TopicPartition, int] = {}
        rewind: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            rewind[tp] = records[0].offset
            offsets[tp] = records[-1].offset + 1
            for record in records:
                self.health.received += 1
                event = self._decode(record)
                if event is not None:
                    items.append((record, event))
        outcome = await emit_prefix(emit, items, self.health, log)
        if outcome.error is None:
            self._store_backoff.reset()
            committer.add(offsets)  # stored: committed in the background, in order
            return
        # StoreError above all: commit only the stored prefix, fetch the rest again later
        await committer.flush()
        for record, _ in items[outcome.stored :]:
            tp = TopicPartition(record.topic, record.partition)
            if offsets[tp] > record.offset:  # the first unstored record of its partition
                offsets[tp] = record.offset
                consumer.seek(tp, record.offset)
        advanced = {tp: offset for tp, offset in offsets.items() if offset > rewind[tp]}
        if advanced:
            await self._commit(consumer, advanced)
        error = describe(outcome.error)
        self.health.last_error = f"emit failed: {error}"
        delay = self._store_backoff.next()
        log.warning("%s: emit failed (%s); retrying in %.1fs", self.name, error, delay)
        await asyncio.sleep(delay)

    def _decode(self, raw: Any) -> Event | None:
        """Record -> Event, or None when refused (counted). Per record: what does not
        change per record is looked up once (``__init__``)."""
        headers = tuple((k, v or b"") for k, v in raw.headers) if raw.headers else ()
        size = len(raw.value or b"") + len(raw.key or b"")
        if headers:
            size += sum(len(k) + len(v) for k, v in headers)
        error = too_large(size, self._limit)
        if error is not None:
            refuse(self.health, log, f"record {_where(raw)} refused", error)
            return None
        record = KafkaRecord(
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            value=raw.value,
            key=raw.key,
            headers=headers,
            timestamp_ms=raw.timestamp,
        )
        try:
            event = record_to_event(record, self._source_prefix, self._key_type)
        except InvalidEventError as exc:
            refuse(self.health, log, f"record {_where(raw)} is not a valid CloudEvent", exc)
            return None
        if self._overrides is not None:
            apply_overrides(event.attributes, self._overrides)
        return event


def _where(raw: Any) -> str:
    return f"{raw.topic}/{raw.partition}@{raw.offset}"


def build(resource: KafkaSourceResource) -> KafkaAdapter:
    """Construct the adapter for a validated ``KafkaSource`` (composition root)."""
    return KafkaAdapter(resource)
