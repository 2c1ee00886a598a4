"""Which partition a record without a key goes to: the same one until its batch is
acknowledged (the "sticky" partitioner of Kafka's Java client, KIP-480).

aiokafka spreads key-less records over the partitions at random, so the records of
concurrent ingress requests that travel in one produce request form one small batch
per partition; the server appends, indexes and answers each batch on its own, and
each wakes consumers. A broker topic has few keyed events (``partitionkey``) and many
without a key, which need no particular partition: keeping them on one partition
while a produce is in flight puts them all in one batch, and moving on once that
batch is acknowledged spreads them over every partition in turn.

Pure: the broker asks :meth:`pick` per record and calls :meth:`acknowledged` with
the partition of a batch once its produce completed.
"""

from __future__ import annotations

from collections.abc import Collection


class StickyPartitions:
    """The current partition of each topic, moved on round robin."""

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, topic: str, partitions: Collection[int]) -> int | None:
        """The partition for a key-less record (None when none is known yet: the
        client picks one once it has the topic's metadata)."""
        current = self._current.get(topic)
        if current is not None and current in partitions:
            return current
        if not partitions:
            return None
        first = min(partitions)
        self._current[topic] = first
        return first

    def acknowledged(self, topic: str, partition: int, partitions: Collection[int]) -> None:
        """A batch to ``partition`` completed: when it is still the current one, the
        next records go to the next partition (so each produce carries one batch)."""
        if self._current.get(topic) != partition or not partitions:
            return
        later = [p for p in partitions if p > partition]
        self._current[topic] = min(later) if later else min(partitions)
