"""The Kafka class commits only the contiguous prefix of done offsets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from brokers.kafka.tracker import OffsetTracker, PartitionOffsets


def test_out_of_order_acks_commit_only_the_prefix() -> None:
    p = PartitionOffsets()
    for offset in range(10, 15):
        p.consumed(offset)
    p.done(12)
    p.done(13)
    assert p.commit_point() == 10  # 10 and 11 still in flight
    p.done(10)
    assert p.commit_point() == 11
    p.done(11)
    assert p.commit_point() == 14
    p.done(14)
    assert p.commit_point() == 15
    assert p.outstanding() == 0


def test_a_failing_record_holds_the_commit_point_until_dead_lettered() -> None:
    p = PartitionOffsets()
    for offset in range(100):
        p.consumed(offset)
    for offset in range(100):
        if offset != 3:
            p.done(offset)
    assert p.commit_point() == 3  # a restart reads from 3: the poison and 96 others
    p.done(3)  # dead-lettered
    assert p.commit_point() == 100


def test_gaps_in_offsets_are_not_waited_for() -> None:
    p = PartitionOffsets()
    for offset in (5, 9, 20):  # compacted or transaction markers between
        p.consumed(offset)
        p.done(offset)
    assert p.commit_point() == 21


def test_tracker_reports_only_moved_points_and_forgets_revoked_partitions() -> None:
    t = OffsetTracker()
    t.consumed("a", 0)
    t.consumed("b", 7)
    t.done("a", 0)
    points = t.to_commit()
    assert points == {"a": 1, "b": 7}
    t.committed(points)
    assert t.to_commit() == {}
    assert t.to_commit({"a"}) == {}
    t.forget({"b"})
    t.done("b", 7)  # a late ack for a revoked partition is ignored
    assert "b" not in t.partitions


@given(st.lists(st.integers(min_value=0, max_value=49), unique=True))
def test_commit_point_is_never_past_a_record_not_done(done: list[int]) -> None:
    p = PartitionOffsets()
    for offset in range(50):
        p.consumed(offset)
    for offset in done:
        p.done(offset)
    point = p.commit_point()
    assert all(o in done for o in range(point))
    assert point == 50 or point not in done


def test_a_batch_marked_consumed_at_once_commits_like_one_by_one() -> None:
    t = OffsetTracker()
    t.consumed_many("a", [3, 4, 6, 7])  # 5: a gap (compacted)
    t.done("a", 4)
    t.done("a", 6)
    assert t.to_commit() == {"a": 3}
    t.done("a", 3)
    assert t.to_commit() == {"a": 7}
    t.done("a", 7)
    assert t.to_commit() == {"a": 8}


def test_a_record_read_again_is_tracked_once_and_stray_acks_change_nothing() -> None:
    p = PartitionOffsets()
    p.consumed_many([0, 1, 2])
    p.consumed(1)  # fetched again (e.g. after a fetch error): still one record
    p.done(1)
    p.done(9)  # never consumed here
    p.done(1)  # acked twice
    assert p.commit_point() == 0
    p.done(0)
    assert p.commit_point() == 2
    p.done(0)  # behind the commit point: nothing
    assert p.outstanding() == 1
    p.done(2)
    assert (p.commit_point(), p.outstanding()) == (3, 0)


@given(st.permutations(list(range(30))))
def test_any_order_of_acks_commits_everything_once_all_are_done(order: list[int]) -> None:
    p = PartitionOffsets()
    p.consumed_many(range(30))
    for i, offset in enumerate(order):
        p.done(offset)
        done = set(order[: i + 1])
        point = p.commit_point()
        assert all(o in done for o in range(point))
        assert point == 30 or point not in done
    assert p.outstanding() == 0
