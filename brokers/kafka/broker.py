"""The Kafka broker: one topic per broker, produced with ``acks=all`` and idempotence.

``publish`` answers only once every record of the batch is acknowledged by all
in-sync replicas, so a 202 from the ingress means the event is in Kafka. While the
cluster is unreachable (at start or later) ``publish`` raises ``StoreError`` (the
ingress answers 503 with ``Retry-After``) and ``status().ready`` is false; the task
``kafka connect <broker>`` keeps (re)connecting, (re)creates the topics when they
are missing (deleted while running), and flips readiness back by itself.

Each trigger is a :class:`~brokers.kafka.subscription.KafkaSubscription` (a consumer
group of its own); ``dlq:`` dead letters go to the broker's dead-letter topic
(:mod:`brokers.kafka.dlq`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.admin import DeleteGroupsRequest

from brokers.kafka.binding import TARGET
from brokers.kafka.config import KafkaSettings
from brokers.kafka.dlq import KafkaDeadLetters
from brokers.kafka.ingress import worker_spec
from brokers.kafka.producing import PUBLISH_TIMEOUT, Producing
from brokers.kafka.subscription import KafkaSubscription
from brokers.support import Backoff, describe, merged_drops, publish_once
from eventing.broker.base import BrokerStatus, BrokerTask, DeadLetterQueue, Filter
from eventing.broker.dedup import Deduplicator
from eventing.broker.index import Router
from eventing.errors import StoreError
from eventing.events import Event
from eventing.settle import uncut

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
CHECK_PERIOD = 2.0
LAG_PERIOD = 1.0
TOPIC_ALREADY_EXISTS = 36


class KafkaBroker:
    durable = True

    def __init__(self, key: str, broker_class: str, settings: KafkaSettings, process: str) -> None:
        self.key = key
        self.broker_class = broker_class
        self.settings = settings
        self.process = process
        self.subscriptions: dict[str, KafkaSubscription] = {}
        self.router = Router()
        """The triggers' filters at publish, indexed (only to count what each drops:
        every trigger's consumer filters what it reads)."""
        self.dlq = KafkaDeadLetters(self)
        self.dead_letters: DeadLetterQueue | None = self.dlq
        self.producing = Producing(key, settings, self.client_id("p"))
        self.admin: Any = None
        self.offsets: Any = None
        """A consumer outside every group, for end offsets (the lag)."""
        self._ready = False
        self._error: str | None = "not connected yet"
        self._connected = asyncio.Event()
        self._drops: dict[tuple[str, str], int] = {}
        self.dedup = Deduplicator()
        """Per process, in memory: see docs/brokers.md for what that guarantees."""
        self.filtered_at_consume = False
        """True when ingress workers produce this broker's HTTP events themselves
        (:meth:`worker_spec`): the main process no longer sees them at publish, so each
        trigger's consumer counts what its filter drops instead of the router."""
        self.opened = False
        """Set by :meth:`open`: later subscriptions are triggers added while running."""

    # -- lifecycle ------------------------------------------------------------------

    def subscribe(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> KafkaSubscription:
        sub = KafkaSubscription(self, trigger, event_filter)
        # A trigger added while running starts at the end of the topic (Knative's
        # default initial offset, "latest"), not at the retained history.
        sub.initial_offset = "latest" if self.opened else "earliest"
        self.subscriptions[trigger] = sub
        self.router.add(trigger, event_filter)
        return sub

    async def refilter(
        self, trigger: str, event_filter: Filter, exact: Mapping[str, str] | None = None
    ) -> None:
        """The group stays, and with it the backlog. Kafka filters after consume, so the
        new filter also decides for records not yet consumed (as Knative's Kafka
        broker, which filters at dispatch)."""
        self.subscriptions[trigger].filter = event_filter
        self.router.add(trigger, event_filter)

    async def unsubscribe(self, trigger: str) -> None:
        """Forget the trigger and delete its consumer group (its committed offsets: the
        backlog), so a trigger created again with the same name starts afresh."""
        sub = self.subscriptions.pop(trigger, None)
        self.router.remove(trigger)
        if sub is None or self.admin is None:
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await delete_group(self.admin, sub.group)
        except (KafkaError, OSError, TimeoutError, StoreError) as exc:
            logger.warning("broker %s: cannot delete group %s: %s", self.key, sub.group,
                           describe(exc))  # fmt: skip

    def trigger_tasks(self, trigger: str) -> list[BrokerTask]:
        sub = self.subscriptions[trigger]
        return [(f"kafka consume {trigger}", sub.run)]

    async def open(self) -> None:
        self.opened = True
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self._connect()
        except (KafkaError, OSError, TimeoutError) as exc:
            self._error = describe(exc)
            logger.warning("broker %s: Kafka unreachable (%s); retrying", self.key, self._error)
            await self._drop_clients()

    async def close(self) -> None:
        self._ready = False
        await self._drop_clients()

    def tasks(self) -> list[BrokerTask]:
        out: list[BrokerTask] = [
            (f"kafka connect {self.key}", self._keep_connected),
            (f"kafka lag {self.key}", self._read_lag),
            (f"kafka dlq {self.key}", self.dlq.tail),
        ]
        for trigger in self.subscriptions:
            out.extend(self.trigger_tasks(trigger))
        return out

    def client_id(self, role: str) -> str:
        return f"eventing-{self.process}-{role}"[:200]

    async def _connect(self) -> None:
        servers = list(self.settings.bootstrap_servers)
        # Each client is kept before it starts, so a start that fails or is cut short
        # by the deadline is still closed by _drop_clients (no connection left open).
        if self.admin is None:
            self.admin = AIOKafkaAdminClient(
                bootstrap_servers=servers, client_id=self.client_id("a")
            )
            await uncut(self.admin.start())
        await self.ensure_topics()
        if self.offsets is None:
            self.offsets = AIOKafkaConsumer(
                bootstrap_servers=servers, client_id=self.client_id("o"), enable_auto_commit=False
            )
            await uncut(self.offsets.start())
        await self.producing.start()
        self._ready = True
        self._error = None
        self._connected.set()
        logger.info("broker %s: connected to Kafka, topic %s", self.key, self.settings.topic)

    async def ensure_topics(self) -> None:
        """Create the broker's topic and dead-letter topic when missing."""
        s = self.settings
        existing = set(await self.admin.list_topics())
        wanted = [
            NewTopic(s.topic, s.partitions, s.replication_factor),
            NewTopic(s.dlq_topic, 1, s.replication_factor),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if not missing:
            return
        try:
            response = await self.admin.create_topics(missing)
        except TopicAlreadyExistsError:
            return
        for name, code, *_ in getattr(response, "topic_errors", []):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise StoreError(f"cannot create topic {name}: error code {code}")
        logger.info("broker %s: created topics %s", self.key, [t.name for t in missing])

    async def _drop_clients(self) -> None:
        admin, offsets = self.admin, self.offsets
        self.admin = self.offsets = None
        stops = (
            self.producing.stop,
            admin.close if admin else None,
            offsets.stop if offsets else None,
        )
        for stop in stops:
            if stop is None:
                continue
            try:
                async with asyncio.timeout(5):
                    await stop()
            except Exception as exc:  # closing a broken client: nothing to keep
                logger.debug("closing a Kafka client: %s", describe(exc))

    async def _keep_connected(self) -> None:
        """(Re)connect while unreachable; re-create topics deleted while running."""
        backoff = Backoff()
        while True:
            if self._ready and self.admin is not None:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await self.ensure_topics()
                    backoff.reset()
                    await asyncio.sleep(CHECK_PERIOD)
                    continue
                except (KafkaError, OSError, TimeoutError, StoreError) as exc:
                    self._error = describe(exc)
                    logger.warning("broker %s: %s", self.key, self._error)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self._connect()
                backoff.reset()
            except (KafkaError, OSError, TimeoutError, StoreError) as exc:
                self._ready = False
                self._error = describe(exc)
                await self._drop_clients()
                await asyncio.sleep(backoff.next())

    async def wait_connected(self) -> None:
        await self._connected.wait()

    # -- the data path ----------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> None:
        await publish_once(self.dedup, events, self._publish, self._drops)

    async def _publish(self, events: Sequence[Event]) -> None:
        if self.filtered_at_consume:
            await self._producer().produce_batched(events, PUBLISH_TIMEOUT)
            return
        routings = [self.router.route(e) for e in events]
        await self._producer().produce_batched(events, PUBLISH_TIMEOUT)
        self.router.record(routings)  # counted once accepted, as the embedded class does

    def worker_spec(self) -> dict[str, Any] | None:
        """What an ingress worker needs to produce this broker's HTTP events itself
        (:mod:`brokers.kafka.ingress`), or None when they must come through this
        process: deduplicating ingress events needs this process's one window."""
        if self.dedup.enabled and self.dedup.ingress:
            return None
        return worker_spec(self.key, self.settings, self.client_id("w"))

    def _producer(self) -> Producing:
        if not self._ready or self.producing.producer is None:
            raise self.producing.unreachable(self._error)
        return self.producing

    async def produce(
        self, topic: str, events: Sequence[Event], extra: dict[str, str] | None = None
    ) -> list[Any]:
        """Produce and wait for every acknowledgement; the records' metadata."""
        return await self._producer().produce(topic, events, extra)

    async def replay(self, trigger: str, event: Event) -> None:
        await self.produce(self.settings.topic, [event], {TARGET: trigger})

    def drops(self) -> Mapping[tuple[str, str], int]:
        own = self.router.drops()
        for key, n in self._drops.items():
            own[key] = own.get(key, 0) + n
        return merged_drops(own, self.subscriptions.values())

    def status(self) -> BrokerStatus:
        return BrokerStatus(
            ready=self._ready,
            detail=self._error if not self._ready else f"topic {self.settings.topic}",
            extra={
                "topic": self.settings.topic,
                "deadLetterTopic": self.settings.dlq_topic,
                "dedupKeys": self.dedup.remembered(),
            },
        )

    async def end_offsets(self) -> dict[Any, int] | None:
        """The end offset of every partition of the broker's topic (None while not
        connected)."""
        offsets = self.offsets
        if offsets is None or self.admin is None:
            return None
        topic = self.settings.topic
        partitions = offsets.partitions_for_topic(topic)
        if not partitions:
            await offsets._client.force_metadata_update()
            partitions = offsets.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        return dict(await offsets.end_offsets(tps))

    async def _read_lag(self) -> None:
        """Keep every trigger's cached backlog (its group's lag) fresh: the topic's end
        offsets once per round, then each group's committed offsets (one request per
        trigger, not three)."""
        errors = (KafkaError, OSError, TimeoutError)
        while True:
            await self._connected.wait()
            try:
                ends = await self.end_offsets()
            except errors as exc:
                logger.debug("broker %s: end offsets: %s", self.key, describe(exc))
                ends = None
            for sub in list(self.subscriptions.values()) if ends else ():
                try:
                    await sub.read_lag(ends or {})
                except errors as exc:
                    logger.debug("backlog of %s: %s", sub.trigger, describe(exc))
            await asyncio.sleep(LAG_PERIOD)


GROUP_GONE = (0, 69)  # no error; GROUP_ID_NOT_FOUND


async def delete_group(admin: Any, group: str) -> None:
    """Delete one consumer group (Kafka's DeleteGroups; aiokafka's admin client has the
    request but no method for it). A group that does not exist is fine."""
    node = await admin.find_coordinator(group)
    response = await admin._send_request(DeleteGroupsRequest([group]), node)
    for _name, code in response.results:
        if code not in GROUP_GONE:
            raise StoreError(f"cannot delete group {group}: error code {code}")
