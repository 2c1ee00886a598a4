"""Consumer lag and queue depth on hand-made offsets (KEDA's edge cases), plus the
shared source machinery: backoff bounds, secret masking, emit outcomes, sink rules."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from eventing.errors import InvalidEventError, StoreError
from eventing.events import Event
from eventing.resources.base import Metadata
from sources.kafka.lag import LagPolicy, PartitionOffsets, consumer_lag, partition_lag
from sources.kafka.model import KafkaSourceSpec
from sources.rabbitmq.depth import QueueCounts, depth
from sources.support.base import SourceHealth
from sources.support.emitting import emit_batch
from sources.support.reconnect import Backoff, describe, redact
from sources.support.source_spec import expand_env, max_message_bytes

LOG = logging.getLogger("test")


@pytest.mark.parametrize(
    ("offsets", "initial", "lag"),
    [
        (PartitionOffsets(committed=5, end=12), "latest", 7),
        (PartitionOffsets(committed=12, end=12), "latest", 0),  # idle partition
        (PartitionOffsets(committed=15, end=12), "latest", 0),  # never negative
        (PartitionOffsets(committed=2, end=12, start=10), "latest", 2),  # retention deleted 2..9
        (PartitionOffsets(committed=None, end=12, start=4), "earliest", 8),
        (PartitionOffsets(committed=None, end=12, start=4), "latest", 1),  # activate one consumer
        (PartitionOffsets(committed=None, end=3, start=3), "latest", 0),  # empty: nothing to do
        (PartitionOffsets(committed=-1, end=0), "earliest", 0),
    ],
)
def test_partition_lag(offsets: PartitionOffsets, initial: str, lag: int) -> None:
    assert partition_lag(offsets, initial) == lag


def parts(*lags: int) -> dict[int, PartitionOffsets]:
    return {i: PartitionOffsets(committed=0, end=lag) for i, lag in enumerate(lags)}


def test_total_is_capped_by_partitions_times_threshold() -> None:
    lag = consumer_lag(parts(100, 0, 5), LagPolicy(lag_threshold=10))
    assert (lag.value, lag.uncapped, lag.active) == (30, 105, True)


def test_cap_by_partitions_with_lag_and_idle_consumers() -> None:
    assert (
        consumer_lag(
            parts(100, 0, 5), LagPolicy(lag_threshold=10, limit_to_partitions_with_lag=True)
        ).value
        == 20
    )
    assert (
        consumer_lag(parts(100, 0, 5), LagPolicy(lag_threshold=10, allow_idle_consumers=True)).value
        == 105
    )


def test_activation_uses_the_uncapped_total() -> None:
    assert not consumer_lag(parts(1, 1), LagPolicy(activation_lag_threshold=2)).active
    assert consumer_lag(parts(2, 1), LagPolicy(activation_lag_threshold=2)).active
    assert not consumer_lag({}, LagPolicy()).active


def test_queue_depth_counts() -> None:
    counts = QueueCounts(ready=4, unacknowledged=3)
    assert depth(counts) == 7
    assert depth(counts, exclude_unacknowledged=True) == 4


def test_backoff_is_bounded_jittered_and_resets() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0)
    delays = [backoff.next() for _ in range(30)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert max(delays[-10:]) > 1.0  # it grew to the bound
    backoff.reset()
    assert backoff.next() <= 0.1


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://guest:s3cret@host:5672/", "amqp://guest:***@host:5672/"),
        ("mqtts://u:p%40ss@h", "mqtts://u:***@h"),
        ("login failed password=hunter2 now", "login failed password=*** now"),
        ("http://host/path", "http://host/path"),
    ],
)
def test_redact(text: str, masked: str) -> None:
    assert redact(text) == masked
    assert "s3cret" not in describe(ConnectionError(f"cannot reach {text}"))


def test_expand_env() -> None:
    assert expand_env("amqp://u:${PW}@h/", {"PW": "x"}) == "amqp://u:x@h/"


def test_max_message_bytes_annotation() -> None:
    assert max_message_bytes(Metadata(name="a")) == 1024 * 1024
    with pytest.raises(ValueError, match="max-message-bytes"):
        max_message_bytes(Metadata(name="a", annotations={"eventing.local/max-message-bytes": "0"}))


def test_sink_is_any_destination_but_a_broker_ref_has_its_api_version() -> None:
    base = {"bootstrapServers": ["a:1"], "topics": ["t"]}
    KafkaSourceSpec.model_validate({**base, "sink": {"ref": {"kind": "Broker", "name": "b"}}})
    KafkaSourceSpec.model_validate({**base, "sink": {"uri": "http://x"}})  # as in Knative
    for sink in (
        {"ref": {"kind": "Broker", "name": "b", "apiVersion": "messaging.knative.dev/v1"}},
    ):
        with pytest.raises(ValidationError, match="Broker"):
            KafkaSourceSpec.model_validate({**base, "sink": sink})


def event(i: int) -> Event:
    return Event({"specversion": "1.0", "id": str(i), "source": "/s", "type": "t"}, b"")


class Emitter:
    def __init__(self, error: Exception | None = None, bad: frozenset[str] = frozenset()) -> None:
        self.error, self.bad, self.stored = error, bad, list[Event]()

    async def __call__(self, events: Sequence[Event], /) -> None:
        if self.error is not None:
            raise self.error
        if any(e.id in self.bad for e in events):
            raise InvalidEventError("too large for the broker")
        self.stored.extend(events)


async def test_emit_batch_stores_and_counts() -> None:
    health = SourceHealth("s", "K")
    emit = Emitter()
    assert await emit_batch(emit, [(i, event(i)) for i in range(3)], health, LOG) == []
    assert (health.emitted, len(emit.stored)) == (3, 3)


async def test_emit_batch_isolates_events_the_broker_refuses() -> None:
    health = SourceHealth("s", "K")
    emit = Emitter(bad=frozenset({"1"}))
    refused = await emit_batch(emit, [(i, event(i)) for i in range(3)], health, LOG)
    assert refused == [1]
    assert [e.id for e in emit.stored] == ["0", "2"]
    assert (health.emitted, health.refused) == (2, 1)


async def test_emit_batch_store_error_propagates_and_counts_failed() -> None:
    health = SourceHealth("s", "K")
    with pytest.raises(StoreError):
        await emit_batch(Emitter(StoreError("full")), [(0, event(0)), (1, event(1))], health, LOG)
    assert (health.failed, health.emitted) == (2, 0)
