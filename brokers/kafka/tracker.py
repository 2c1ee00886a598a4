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

from collections import deque
from collections.abc import Collection, Hashable, Iterable


class PartitionOffsets:
    """The consumed, not yet committable records of one partition.

    Kept as the offsets in the order consumed from the first one not done (a deque)
    and the set of those behind it that are done: in the common case a record is
    finished while it is the oldest one (an ordered trigger, a prompt subscriber) and
    costs an append and a popleft; a record finished out of order waits in the set
    until the ones before it are done. Offsets only grow within a partition's
    assignment (a new assignment gets a new instance)."""

    __slots__ = ("_done", "_pending", "committed", "consumed_up_to")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self.consumed_up_to = -1
        """One past the highest offset consumed (-1: none yet)."""
        self.committed = -1
        """The last commit point handed out (-1: none)."""

    def consumed(self, offset: int) -> None:
        if offset >= self.consumed_up_to:  # a record read again is tracked once
            self._pending.append(offset)
            self.consumed_up_to = offset + 1

    def consumed_many(self, offsets: Iterable[int]) -> None:
        """:meth:`consumed` for a fetched batch's offsets, in order."""
        for offset in offsets:
            if offset >= self.consumed_up_to:
                self._pending.append(offset)
                self.consumed_up_to = offset + 1

    def done(self, offset: int) -> None:
        pending = self._pending
        if not pending:
            return
        first = pending[0]
        if offset == first:
            pending.popleft()
            done = self._done
            if done:
                while pending and pending[0] in done:
                    done.discard(pending.popleft())
        elif first < offset < self.consumed_up_to:
            self._done.add(offset)

    def commit_point(self) -> int:
        """The next offset to read after a restart: the first record not done."""
        if self._pending:
            return self._pending[0]
        return self.consumed_up_to

    def outstanding(self) -> int:
        return len(self._pending)


class OffsetTracker:
    """Per-partition :class:`PartitionOffsets`, keyed by any partition id."""

    def __init__(self) -> None:
        self.partitions: dict[Hashable, PartitionOffsets] = {}

    def consumed(self, partition: Hashable, offset: int) -> None:
        offsets = self.partitions.get(partition)
        if offsets is None:
            offsets = self.partitions[partition] = PartitionOffsets()
        offsets.consumed(offset)

    def consumed_many(self, partition: Hashable, offsets: Iterable[int]) -> None:
        found = self.partitions.get(partition)
        if found is None:
            found = self.partitions[partition] = PartitionOffsets()
        found.consumed_many(offsets)

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
