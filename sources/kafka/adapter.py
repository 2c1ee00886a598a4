"""KafkaSource adapter (aiokafka): consume topics in a consumer group and put each
record into the broker as a CloudEvent, committing only what the broker stored.

At-least-once, step by step: a ``getmany`` batch is decoded (pure,
:mod:`sources.kafka.binding`), handed to ``emit``, and only after ``emit`` returned
are exactly the batch's offsets (last + 1 per partition) handed to the
:class:`~sources.kafka.commits.Committer`, which commits them in the background, one
commit at a time. While one ``emit`` stores, the next batches are fetched and decoded
(at most :data:`sources.kafka.session.AHEAD`) and then stored together by the next
``emit``: one ``emit`` in flight at a time, so each partition's records reach the
broker in order (:mod:`sources.kafka.ahead`; the loop is :mod:`sources.kafka.session`).
If ``emit`` raises, nothing more is committed, every partition is rewound (``seek``)
to its first record not stored (what was fetched ahead is thrown away and read
again), and the source backs off before fetching again, so the same records come
back. When the store fills part-way through a batch, the prefix that fit is committed
and each partition is rewound to its first unstored record
(:func:`sources.support.emitting.emit_prefix`). A failed commit or a lost connection
restarts the session: the group resumes from its last commit, so records may be read
twice, never lost; what of them the broker stored already is skipped by position
(:mod:`sources.kafka.positions`). A revocation waits for the ``emit`` in flight and
commits what it stored before the partitions go; what was fetched ahead is read again.

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
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from eventing.errors import ConfigError, InvalidEventError
from eventing.events import Event
from eventing.settle import uncut
from sources.kafka.ahead import Fetched, rewind
from sources.kafka.binding import KafkaRecord, PlainWrap, record_to_event
from sources.kafka.commits import Committer
from sources.kafka.model import KafkaSourceResource
from sources.kafka.positions import highest_stored, key_last, position_id
from sources.kafka.session import Assignments, Loop
from sources.support.base import Emit, Recall, SourceHealth, SourceState
from sources.support.emitting import Outcome, emit_prefix, refuse, too_large
from sources.support.reconnect import Backoff, close_quietly, describe, keep_connected
from sources.support.source_spec import apply_overrides, source_path

log = logging.getLogger(__name__)

MODEL = KafkaSourceResource
BATCH: Final = 256
FINAL_COMMIT_TIMEOUT: Final = 2.0
PROBE_TIMEOUT: Final = 3.0
COMMIT_PATIENCE: Final = 3.0
#: Least time between two offset commits while records flow (:class:`Committer`).
COMMIT_INTERVAL: Final = 0.25


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
        self._plain = PlainWrap(self._source_prefix, resource.key_type)
        self.drops: dict[str, int] = {}
        """Records not emitted on purpose, by reason (``duplicate``: stored already)."""
        self._recall: Recall | None = None
        self._by_position: dict[str, bool] = {}
        """Per topic: its wrapped records are deduplicated by position (one key per
        ``emit`` and partition) because the emit can recall stored ids."""

    async def run(self, emit: Emit) -> None:
        """Consume until cancelled, with ``spec.consumers`` members of the group."""
        self._recall = emit if isinstance(emit, Recall) else None
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

        committer = Committer(commit, self.name, interval=COMMIT_INTERVAL)
        assignments = Assignments(committer)
        consumer.subscribe(topics=list(spec.topics), listener=assignments)
        loop = Loop(self, consumer, committer, assignments, emit)
        try:
            await uncut(consumer.start())
            self.health.set_state("connected")
            backoff.reset()
            await loop.run()
        finally:
            await loop.cancel()
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

    async def _commit_start(self, consumer: Any, assignments: Assignments) -> None:
        """Commit the reset position of partitions the group never committed."""
        offsets = {}
        for tp in list(assignments.pending):
            if tp in consumer.assignment() and await consumer.committed(tp) is None:
                offsets[tp] = await consumer.position(tp)
        assignments.pending.clear()
        if offsets:
            await consumer.commit(offsets)

    def _prepare(self, batches: Mapping[Any, Sequence[Any]], assignments: Assignments) -> Fetched:
        """Decode one ``getmany`` result (refused records are counted, not kept; those
        of a newly assigned partition stored already are skipped and counted)."""
        fetched = Fetched()
        items = fetched.items
        health = self.health
        for tp, fetched_records in batches.items():
            fetched.add(tp, fetched_records[0].offset, fetched_records[-1].offset)
            if tp in assignments.unchecked:
                self._look_up(tp, assignments)
            records = fetched_records
            skipped = assignments.skips.first_new(tp, records) if assignments.skips.stored else 0
            if skipped:
                health.received += skipped
                self.drops["duplicate"] = self.drops.get("duplicate", 0) + skipped
                records = records[skipped:]
            positional = self._by_position.get(tp.topic, False)
            for record in records:
                health.received += 1
                event = self._decode(record, positional)
                if event is not None:
                    items.append((record, event))
        return fetched

    def _look_up(self, tp: Any, assignments: Assignments) -> None:
        """A newly assigned partition: the highest offset its broker remembers storing
        (:mod:`sources.kafka.positions`), and whether its topic goes by position."""
        assignments.unchecked.discard(tp)
        if tp.topic not in assignments.stored:  # one look per topic and assignment
            ids = None
            if self._recall is not None:
                ids = self._recall.stored_ids(f"{self._source_prefix}#{tp.topic}")
            assignments.stored[tp.topic] = None if ids is None else highest_stored(ids)
        stored = assignments.stored[tp.topic]
        self._by_position[tp.topic] = stored is not None
        highest = None if stored is None else stored.get(tp.partition)
        assignments.skips.learn(tp, highest)
        if highest is not None:
            log.info("%s: %s is stored up to offset %d", self.name, _where_tp(tp), highest)

    async def _store(self, committer: Committer, batch: Fetched, emit: Emit) -> Outcome[Any]:
        """Emit ``batch``; once it is stored its offsets go to the committer (before
        this task ends, so a revocation that waits for it sees them)."""
        outcome = await emit_prefix(emit, batch.items, self.health, log, before=key_last)
        if outcome.error is None:
            self._store_backoff.reset()
            committer.add(batch.offsets)  # stored: committed in the background, in order
        return outcome

    async def _rewind(
        self,
        consumer: Any,
        committer: Committer,
        batch: Fetched,
        outcome: Outcome[Any],
        dropped: Sequence[Fetched],
    ) -> None:
        """StoreError above all: commit only the stored prefix, read the rest (and what
        was fetched after it) again after a back-off."""
        assert outcome.error is not None
        await committer.flush()
        plan = rewind(
            batch, outcome.stored, lambda r: TopicPartition(r.topic, r.partition), dropped
        )
        for tp, offset in plan.seek.items():
            consumer.seek(tp, offset)
        if plan.commit:
            await self._commit(consumer, plan.commit)
        error = describe(outcome.error)
        self.health.last_error = f"emit failed: {error}"
        delay = self._store_backoff.next()
        log.warning("%s: emit failed (%s); retrying in %.1fs", self.name, error, delay)
        await asyncio.sleep(delay)

    def _decode(self, raw: Any, positional: bool = False) -> Event | None:
        """Record -> Event, or None when refused (counted). Per record: what does not
        change per record is looked up once (``__init__``); a plain record without
        headers takes :class:`~sources.kafka.binding.PlainWrap`. ``positional``: a
        wrapped event carries no deduplication key of its own (``dedup = ""``) unless
        :func:`~sources.kafka.positions.key_last` gives it one."""
        if not raw.headers:
            value, key = raw.value, raw.key
            if (len(value) if value else 0) + (len(key) if key else 0) <= self._limit:
                event = self._plain(raw.topic, raw.partition, raw.offset, value, key, raw.timestamp)
                if event is not None:
                    if self._overrides is None:
                        if positional:
                            event.dedup = ""
                        return event
                    apply_overrides(event.attributes, self._overrides)
                    if positional and _is_position(event, raw, self._source_prefix):
                        event.dedup = ""
                    return event
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
        if positional and _is_position(event, raw, self._source_prefix):
            event.dedup = ""
        return event


def _is_position(event: Event, raw: Any, prefix: str) -> bool:
    """Whether ``event``'s deduplication key is its record's position."""
    attributes = event.attributes
    return attributes.get("id") == position_id(raw.partition, raw.offset) and attributes.get(
        "source"
    ) == (f"{prefix}#{raw.topic}")


def _where(raw: Any) -> str:
    return f"{raw.topic}/{raw.partition}@{raw.offset}"


def _where_tp(tp: Any) -> str:
    return f"{tp.topic}/{tp.partition}"


def build(resource: KafkaSourceResource) -> KafkaAdapter:
    """Construct the adapter for a validated ``KafkaSource`` (composition root)."""
    return KafkaAdapter(resource)
