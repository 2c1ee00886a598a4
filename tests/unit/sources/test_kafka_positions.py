"""Deduplication of a KafkaSource by position (``sources.kafka.positions``): one key
per emit and partition, records stored already skipped after an assignment; and the
plain-record decoding that goes with it (``PlainWrap``), identical to ``wrap``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from eventing.errors import InvalidEventError, StoreFullError
from eventing.events import Event
from sources.kafka import adapter as kafka
from sources.kafka.binding import KafkaRecord, PlainWrap, wrap
from sources.kafka.positions import Skips, highest_stored, key_last, position_id
from sources.kafka.session import Assignments
from sources.support.emitting import emit_prefix

PREFIX = "/apis/v1/namespaces/ns/kafkasources/src"
SCOPE = "KafkaSource/ns/src"


def consumer_record(
    offset: int, *, partition: int = 0, topic: str = "orders", headers: Any = ()
) -> Any:
    key = str(offset % 3).encode()
    return ConsumerRecord(
        topic, partition, offset, 1_700_000_000_000, 0, key, b"{}", None, 1, 2, headers
    )


def adapter(overrides: dict[str, str] | None = None) -> kafka.KafkaAdapter:
    resource = kafka.MODEL.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1",
            "kind": "KafkaSource",
            "metadata": {"name": "src", "namespace": "ns"},
            "spec": {
                **({"ceOverrides": {"extensions": overrides}} if overrides else {}),
                "bootstrapServers": ["127.0.0.1:9092"],
                "topics": ["orders"],
                "sink": {
                    "ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "b"}
                },
            },
        }
    )
    return kafka.build(resource)


class RecallingEmit:
    """An emit that remembers the keyed ids it stored, like the broker's window, and
    can be told to refuse the next emits as full."""

    def __init__(self, full_above: int | None = None) -> None:
        self.stored: list[Event] = []
        self.keyed: list[tuple[str, str]] = []
        self.calls: list[list[Event]] = []
        self.full_above = full_above
        self.looks = 0

    async def __call__(self, events: Sequence[Event], /) -> None:
        if self.full_above is not None and len(events) > self.full_above:
            raise StoreFullError("full")
        self.calls.append(list(events))
        for event in events:
            event.dedup = SCOPE if event.dedup is None else event.dedup
            if event.dedup:
                self.keyed.append((event.source, event.id))
        self.stored.extend(events)

    def stored_ids(self, source: str, /) -> Iterable[str] | None:
        self.looks += 1
        return [i for s, i in self.keyed if s == source]


def test_highest_stored_per_partition_ignores_other_ids() -> None:
    ids = ["partition:0/offset:7", "partition:0/offset:12", "partition:3/offset:1", "order-17"]
    assert highest_stored(ids) == {0: 12, 3: 1}
    assert highest_stored(["partition:1/offset:2/x", "partition:x/offset:1"]) == {}


def test_key_last_keys_the_last_positional_event_of_each_partition() -> None:
    records = [consumer_record(o, partition=o % 2) for o in range(6)]
    events = [Event({"id": position_id(r.partition, r.offset)}) for r in records]
    for event in events:
        event.dedup = ""
    events[5].dedup = None  # a CloudEvent record: its own key
    items = list(zip(records, events, strict=True))
    key_last(items)
    # partition 0: offsets 0, 2, 4 -> 4 keyed; partition 1: 1, 3 positional, 5 not -> 3
    assert [e.dedup for e in events] == ["", "", "", None, None, None]


def test_skips_what_is_stored_until_a_record_passes_it() -> None:
    skips = Skips()
    tp = TopicPartition("orders", 0)
    assert skips.first_new(tp, [consumer_record(0)]) == 0
    skips.learn(tp, 5)
    assert skips.first_new(tp, [consumer_record(o) for o in range(3)]) == 3
    assert skips.first_new(tp, [consumer_record(o) for o in range(3, 9)]) == 3
    assert skips.first_new(tp, [consumer_record(o) for o in range(3, 9)]) == 0  # passed
    skips.learn(tp, 2)
    skips.forget([tp])
    assert skips.first_new(tp, [consumer_record(0)]) == 0


async def test_each_emit_keys_one_event_per_partition_and_a_new_assignment_skips_them() -> None:
    source = adapter()
    emit = RecallingEmit()
    source._recall = emit
    assignments = Assignments(None)  # type: ignore[arg-type]
    tps = [TopicPartition("orders", p) for p in (0, 1)]
    await assignments.on_partitions_assigned(set(tps))
    batch = {tp: [consumer_record(o, partition=tp.partition) for o in range(4)] for tp in tps}
    fetched = source._prepare(batch, assignments)
    outcome = await emit_prefix(
        emit, fetched.items, source.health, logging.getLogger("t"), before=key_last
    )
    assert outcome.stored == 8
    assert outcome.error is None
    assert sorted(emit.keyed) == [
        (f"{PREFIX}#orders", "partition:0/offset:3"),
        (f"{PREFIX}#orders", "partition:1/offset:3"),
    ]
    # A restart (a new session) reads from the last commit, offset 1 of partition 0
    # and 0 of partition 1: what is stored is skipped, the rest decoded.
    again = Assignments(None)  # type: ignore[arg-type]
    await again.on_partitions_assigned(set(tps))
    reread = {
        tps[0]: [consumer_record(o, partition=0) for o in range(1, 6)],
        tps[1]: [consumer_record(o, partition=1) for o in range(0, 4)],
    }
    looks = emit.looks
    fetched = source._prepare(reread, again)
    assert emit.looks == looks + 1  # one look for the topic's two partitions
    assert [(r.partition, r.offset) for r, _ in fetched.items] == [(0, 4), (0, 5)]
    assert fetched.offsets == {tps[0]: 6, tps[1]: 4}  # committed past the skipped ones
    assert source.drops == {"duplicate": 7}
    assert source.health.received == 8 + 9


async def test_a_store_full_prefix_keys_each_part_it_stored() -> None:
    source = adapter()
    emit = RecallingEmit(full_above=2)
    source._recall = emit
    assignments = Assignments(None)  # type: ignore[arg-type]
    tp = TopicPartition("orders", 0)
    await assignments.on_partitions_assigned({tp})
    fetched = source._prepare({tp: [consumer_record(o) for o in range(5)]}, assignments)
    outcome = await emit_prefix(
        emit, fetched.items, source.health, logging.getLogger("t"), before=key_last
    )
    assert outcome.stored == 5
    assert [len(c) for c in emit.calls] == [2, 2, 1]
    # every emit that stored something stored a key with it
    assert [i for _, i in emit.keyed] == [
        "partition:0/offset:1",
        "partition:0/offset:3",
        "partition:0/offset:4",
    ]


async def test_without_recall_every_event_keeps_its_key() -> None:
    source = adapter()
    assignments = Assignments(None)  # type: ignore[arg-type]
    tp = TopicPartition("orders", 0)
    await assignments.on_partitions_assigned({tp})
    fetched = source._prepare({tp: [consumer_record(o) for o in range(3)]}, assignments)
    assert all(e.dedup is None for _, e in fetched.items)


async def test_cloudevent_records_keep_their_own_keys() -> None:
    source = adapter()
    source._recall = RecallingEmit()
    assignments = Assignments(None)  # type: ignore[arg-type]
    tp = TopicPartition("orders", 0)
    await assignments.on_partitions_assigned({tp})
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"order-1"),
        ("ce_source", b"/shop"),
        ("ce_type", b"order.paid"),
    ]
    batch = {tp: [consumer_record(0, headers=headers), consumer_record(1)]}
    fetched = source._prepare(batch, assignments)
    assert [e.dedup for _, e in fetched.items] == [None, ""]


names = st.text(alphabet="abcXYZ09._-", min_size=1, max_size=12)
keys = st.one_of(
    st.none(),
    st.binary(max_size=8),
    st.text(max_size=8).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@given(
    topic=st.one_of(names, st.text(max_size=6)),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**63 - 1),
    value=st.one_of(st.none(), st.binary(max_size=8)),
    key=keys,
    timestamp=st.one_of(st.none(), st.integers(-5, 2**41)),
    key_type=st.sampled_from(["string", "int", "float", "byte-array"]),
)
def test_plain_wrap_is_wrap(
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    key: bytes | None,
    timestamp: int | None,
    key_type: Any,
) -> None:
    fast = PlainWrap(PREFIX, key_type)(topic, partition, offset, value, key, timestamp)
    if fast is None:
        return  # wrap decides
    record = KafkaRecord(topic, partition, offset, value, key, (), timestamp)
    try:
        slow = wrap(record, PREFIX, key_type)
    except InvalidEventError:
        raise AssertionError("PlainWrap made an event wrap refuses") from None
    assert fast.attributes == slow.attributes
    assert list(fast.attributes) == list(slow.attributes)
    assert fast.data == slow.data


async def test_an_override_of_the_id_takes_the_event_off_its_position() -> None:
    tp = TopicPartition("orders", 0)
    for overrides, marks in (({"team": "a"}, ["", ""]), ({"id": "fixed"}, [None, None])):
        source = adapter(overrides)
        source._recall = RecallingEmit()
        assignments = Assignments(None)  # type: ignore[arg-type]
        await assignments.on_partitions_assigned({tp})
        fetched = source._prepare({tp: [consumer_record(0), consumer_record(1)]}, assignments)
        assert [e.dedup for _, e in fetched.items] == marks
