"""What the KafkaSource commits and where it reads again when a store fails, with
batches fetched ahead of the one being stored (sources/kafka/ahead.py)."""

from __future__ import annotations

from dataclasses import dataclass

from eventing.events import Event
from sources.kafka.ahead import Fetched, merged, rewind


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int


def fetched(
    *runs: tuple[int, int, int], refused: frozenset[tuple[int, int]] = frozenset()
) -> Fetched:
    """Records ``first..last`` of partition ``p`` for each (p, first, last)."""
    out = Fetched()
    for p, first, last in runs:
        out.add(p, first, last)
        for offset in range(first, last + 1):
            if (p, offset) not in refused:
                out.items.append((Record(p, offset), Event({"id": f"{p}/{offset}"})))
    return out


def key(record: Record) -> int:
    return record.partition


def test_merged_batches_keep_fetch_order_and_the_latest_offsets() -> None:
    batch = merged([fetched((0, 0, 2), (1, 5, 5)), fetched((0, 3, 4), (2, 7, 8))])
    assert [r.offset for r, _ in batch.items] == [0, 1, 2, 5, 3, 4, 7, 8]
    assert batch.first == {0: 0, 1: 5, 2: 7}
    assert batch.offsets == {0: 5, 1: 6, 2: 9}


def test_a_failed_store_commits_the_prefix_and_rewinds_the_rest() -> None:
    batch = fetched((0, 10, 12), (1, 20, 21))  # items: 0/10 0/11 0/12 1/20 1/21
    plan = rewind(batch, 2, key)
    assert plan.commit == {0: 12}  # partition 1 did not advance
    assert plan.seek == {0: 12, 1: 20}


def test_nothing_stored_commits_nothing() -> None:
    plan = rewind(fetched((0, 10, 12)), 0, key)
    assert plan.commit == {}
    assert plan.seek == {0: 10}


def test_batches_fetched_after_a_failure_are_read_again() -> None:
    batch = fetched((0, 10, 11), (1, 20, 21))
    later = [fetched((0, 12, 13), (2, 30, 31)), fetched((2, 32, 33), (3, 40, 40))]
    plan = rewind(batch, 3, key, later)  # stored 0/10 0/11 1/20
    assert plan.commit == {0: 12, 1: 21}
    # partition 0: all of the failed batch stored, read again from what came after;
    # 1: its first unstored record; 2 and 3: only fetched after, from their first.
    assert plan.seek == {0: 12, 1: 21, 2: 30, 3: 40}


def test_refused_records_at_the_end_are_committed_past() -> None:
    batch = fetched((0, 10, 12), refused=frozenset({(0, 12)}))
    plan = rewind(batch, 2, key)  # both events stored; 0/12 was refused
    assert plan.commit == {0: 13}
    assert plan.seek == {}
