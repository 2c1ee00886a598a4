"""Kafka consumer-group lag as a scaling input (KEDA's ``kafka`` scaler, with its edge
cases decided on purpose). :func:`consumer_lag` is the pure computation; the
:class:`KafkaConsumerLag` probe feeds it from a real cluster.

Per partition (``end`` = high watermark, ``start`` = log start offset):

- committed offset ``c``: lag = ``end - max(c, start)``, never negative. A commit
  older than the retained log counts only what is still there (KEDA counts deleted
  messages, keda#7936).
- no committed offset, ``initialOffset: earliest``: the group will read the whole
  retained log: lag = ``end - start``.
- no committed offset, ``initialOffset: latest``: the group will skip what is there,
  so the backlog is 0 for an empty partition and **1** for a non-empty one, enough to
  activate one consumer, which then establishes a position. KEDA does the same but
  stays at 1 forever when the consumer never commits (keda#2033); our KafkaSource
  commits its starting position on assignment, so the lag becomes exact.
- idle partitions (lag 0) add nothing.

Total and cap: the scaling value is the sum, capped at ``partitions * lagThreshold``
(or ``partitions with lag * lagThreshold`` with ``limit_to_partitions_with_lag``) so
the autoscaler never asks for more consumers than partitions can feed, unless
``allow_idle_consumers``. The cap is ``min(total, ub * threshold)``, slightly stricter
than KEDA's integer-division test, which lets ``ub + 1`` replicas through just below
the next multiple. Activity is the *uncapped* total above ``activation_lag_threshold``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from eventing.autoscaler.observe import MetricSample
from eventing.errors import SourceError
from eventing.settle import uncut
from sources.support.reconnect import close_quietly, describe

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    committed: int | None
    end: int
    start: int = 0


@dataclass(frozen=True, slots=True)
class LagPolicy:
    lag_threshold: int = 10
    activation_lag_threshold: int = 0
    initial_offset: Literal["earliest", "latest"] = "latest"
    allow_idle_consumers: bool = False
    limit_to_partitions_with_lag: bool = False


@dataclass(frozen=True, slots=True)
class Lag:
    value: int
    """Total lag for scaling, after the partition cap."""
    uncapped: int
    per_partition: Mapping[Any, int]
    active: bool


def partition_lag(offsets: PartitionOffsets, initial_offset: str) -> int:
    end, start = offsets.end, min(offsets.start, offsets.end)
    if offsets.committed is None or offsets.committed < 0:
        if initial_offset == "earliest":
            return end - start
        return 1 if end > start else 0
    return max(0, end - max(offsets.committed, start))


def consumer_lag(partitions: Mapping[Any, PartitionOffsets], policy: LagPolicy) -> Lag:
    per = {key: partition_lag(p, policy.initial_offset) for key, p in partitions.items()}
    total = sum(per.values())
    value = total
    if not policy.allow_idle_consumers or policy.limit_to_partitions_with_lag:
        bound = len(per)
        if policy.limit_to_partitions_with_lag:
            bound = sum(1 for lag in per.values() if lag > 0)
        value = min(total, bound * policy.lag_threshold)
    return Lag(value, total, per, total > policy.activation_lag_threshold)


class KafkaConsumerLag:
    """``MetricSource`` for a consumer group on some topics: one probe, value + active."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        group: str,
        topics: Sequence[str],
        policy: LagPolicy | None = None,
    ) -> None:
        self.group = group
        self.topics = list(topics)
        self.policy = policy or LagPolicy()
        self._servers = list(bootstrap_servers)
        self._admin: Any = None
        self._consumer: Any = None

    async def read(self) -> MetricSample:
        lag = await self.lag()
        return MetricSample(float(lag.value), lag.active)

    async def lag(self) -> Lag:
        try:
            offsets = await self._offsets()
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.close()
            raise SourceError(f"cannot read lag of group {self.group!r}: {describe(exc)}") from exc
        return consumer_lag(offsets, self.policy)

    async def _offsets(self) -> dict[Any, PartitionOffsets]:
        if self._admin is None:  # assigned before start: close() cleans up a failed start
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self._servers)
            await uncut(self._admin.start())
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self._servers, enable_auto_commit=False
            )
            await uncut(self._consumer.start())
        described = await self._admin.describe_topics(self.topics)
        tps = [
            TopicPartition(topic["topic"], part["partition"])
            for topic in described
            if topic["error_code"] == 0
            for part in topic["partitions"]
        ]
        if not tps:
            return {}
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=tps)
        ends = await self._consumer.end_offsets(tps)
        starts = await self._consumer.beginning_offsets(tps)
        result = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = None if meta is None or meta.offset < 0 else int(meta.offset)
            result[tp] = PartitionOffsets(offset, int(ends[tp]), int(starts[tp]))
        return result

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            await close_quietly(consumer.stop, log)
        if admin is not None:
            await close_quietly(admin.close, log)
