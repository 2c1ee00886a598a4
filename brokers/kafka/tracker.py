"""Which offsets may be committed: the contiguous prefix of done records, per partition.

A record is *done* when the subscriber answered 2xx, the dead letter was stored, or
the trigger's filter rejected it. An unordered trigger finishes records out of
order; committing the highest done offset would skip a record still in flight (or
waiting for a retry), which a crash would then lose. So per partition we keep the
consumed records in offset order and commit only up to the first one not done. A
record that keeps failing holds the commit point until it is dead-lettered; after a
restart only records from it onwards are read again.

Pure and synchronous: the subscription calls it from the consume loop and from acks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Hashable


class PartitionOffsets:
    """The consumed, not yet committable records of one partition."""

    __slots__ = ("_records", "committed", "consumed_up_to")

    def __init__(self) -> None:
        self._records: OrderedDict[int, bool] = OrderedDict()
        self.consumed_up_to = -1
        """One past the highest offset consumed (-1: none yet)."""
        self.committed = -1
        """The last commit point handed out (-1: none)."""

    def consumed(self, offset: int) -> None:
        self._records[offset] = False
        self.consumed_up_to = max(self.consumed_up_to, offset + 1)

    def done(self, offset: int) -> None:
        if offset in self._records:
            self._records[offset] = True
            while self._records:
                first, finished = next(iter(self._records.items()))
                if not finished:
                    break
                del self._records[first]

    def commit_point(self) -> int:
        """The next offset to read after a restart: the first record not done."""
        if self._records:
            return next(iter(self._records))
        return self.consumed_up_to

    def outstanding(self) -> int:
        return len(self._records)


class OffsetTracker:
    """Per-partition :class:`PartitionOffsets`, keyed by any partition id."""

    def __init__(self) -> None:
        self.partitions: dict[Hashable, PartitionOffsets] = {}

    def consumed(self, partition: Hashable, offset: int) -> None:
        offsets = self.partitions.get(partition)
        if offsets is None:
            offsets = self.partitions[partition] = PartitionOffsets()
        offsets.consumed(offset)

    def done(self, partition: Hashable, offset: int) -> None:
        offsets = self.partitions.get(partition)
        if offsets is not None:
            offsets.done(offset)

    def to_commit(self, partitions: Collection[Hashable] | None = None) -> dict[Hashable, int]:
        """Commit points that moved since the last call (of ``partitions``, or all)."""
        out: dict[Hashable, int] = {}
        for partition, offsets in self.partitions.items():
            if partitions is not None and partition not in partitions:
                continue
            point = offsets.commit_point()
            if point > offsets.committed and point >= 0:
                out[partition] = point
        return out

    def committed(self, points: dict[Hashable, int]) -> None:
        for partition, point in points.items():
            offsets = self.partitions.get(partition)
            if offsets is not None:
                offsets.committed = max(offsets.committed, point)

    def forget(self, partitions: Collection[Hashable]) -> None:
        for partition in list(self.partitions):
            if partition in partitions:
                del self.partitions[partition]
