"""Key-less records stay on one partition until its batch is acknowledged, then move
on round robin, so one produce request carries one batch and every partition gets
its turn."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from brokers.kafka.config import read_settings
from brokers.kafka.sticky import StickyPartitions


def test_stays_until_acknowledged_then_moves_round_robin() -> None:
    sticky = StickyPartitions()
    parts = {0, 1, 2}
    assert [sticky.pick("t", parts) for _ in range(5)] == [0] * 5
    sticky.acknowledged("t", 0, parts)
    assert sticky.pick("t", parts) == 1
    sticky.acknowledged("t", 0, parts)  # a late ack of the old partition: no move
    assert sticky.pick("t", parts) == 1
    sticky.acknowledged("t", 1, parts)
    assert sticky.pick("t", parts) == 2
    sticky.acknowledged("t", 2, parts)
    assert sticky.pick("t", parts) == 0  # wrapped around


def test_topics_are_independent_and_unknown_partitions_defer_to_the_client() -> None:
    sticky = StickyPartitions()
    assert sticky.pick("a", set()) is None
    assert sticky.pick("a", {3, 5}) == 3
    assert sticky.pick("b", {0, 1}) == 0
    sticky.acknowledged("a", 3, {3, 5})
    assert sticky.pick("a", {3, 5}) == 5
    assert sticky.pick("b", {0, 1}) == 0


def test_a_partition_that_went_away_is_replaced() -> None:
    sticky = StickyPartitions()
    assert sticky.pick("t", {0, 1, 2, 3}) == 0
    sticky.acknowledged("t", 0, {0, 1, 2, 3})
    assert sticky.pick("t", {0, 1, 2, 3}) == 1
    assert sticky.pick("t", {0}) == 0  # the topic was re-created with one partition


@given(st.integers(1, 12), st.integers(0, 60))
def test_every_partition_gets_its_turn(count: int, batches: int) -> None:
    sticky = StickyPartitions()
    parts = set(range(count))
    used = []
    for _ in range(batches):
        p = sticky.pick("t", parts)
        assert p in parts
        used.append(p)
        assert p is not None
        sticky.acknowledged("t", p, parts)
    for p in parts:  # round robin: counts differ by at most one
        assert abs(used.count(p) - batches / count) <= 1


def test_producer_settings_are_read_and_bounded() -> None:
    settings, problems = read_settings("ns/b", {"bootstrap.servers": "h:1"})
    assert (settings.linger_ms, settings.batch_size, problems) == (0, 512 * 1024, [])
    settings, problems = read_settings(
        "ns/b",
        {"bootstrap.servers": "h:1", "producer.linger.ms": "5", "producer.batch.size": "65536"},
    )
    assert (settings.linger_ms, settings.batch_size, problems) == (5, 65536, [])
    _, problems = read_settings("ns/b", {"bootstrap.servers": "h:1", "producer.batch.size": "9"})
    assert [key for key, _ in problems] == ["producer.batch.size"]
