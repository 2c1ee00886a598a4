"""Which events each trigger has pending, in memory: the per-trigger side of the store.

Why in memory and not a B-tree on disk: a table (or index) clustered by trigger is
what a fan-out batch scatters. A group of 100 events for 100 different triggers
dirtied about 100 of its pages at the insert and again at the acks (each dirty page a
4 KiB WAL frame, and a B-tree descent per row), where one trigger's rows dirtied one
or two. On disk the store keeps every row in ``seq`` order only (see
:mod:`eventing.broker.sqlite_schema`), so an insert appends and an ack deletes near
the front whatever the number of triggers; the per-trigger order that reading a
trigger's backlog needs (``load_pending``: spill and recovery) is kept here, rebuilt
at every open from one scan of the rows.

The cost: 8 bytes per pending row (an ``array('q')`` per trigger; a 1M-event backlog
is 8 MB), and a few list and bisect operations per event on the loop. The contents
always equal what the last commit left on disk: the store applies its changes here
only after a COMMIT, from what the statements returned.

Per trigger the seqs are appended in increasing order (seqs are assigned in commit
order); an ack of the oldest moves ``head`` on, an ack out of order goes into
``gone`` until ``head`` passes it. Both are compacted when they pass half the array.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Sequence

_COMPACT = 1024  # no compaction below this many dead entries (amortised memmoves)


class _Slot:
    __slots__ = ("gone", "head", "seqs")

    def __init__(self) -> None:
        self.seqs: array[int] = array("q")
        self.head = 0  # seqs[:head] are done
        self.gone: set[int] = set()  # done seqs at or after head

    def count(self) -> int:
        return len(self.seqs) - self.head - len(self.gone)

    def find(self, seq: int) -> int:
        """The position of ``seq`` if it is pending, else -1."""
        seqs = self.seqs
        i = bisect_left(seqs, seq, self.head)
        if i < len(seqs) and seqs[i] == seq and seq not in self.gone:
            return i
        return -1


class PendingIndex:
    """Pending seqs by trigger: add, remove, test, count, and page in seq order."""

    __slots__ = ("_slots",)

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    def add(self, trigger: str, seqs: Sequence[int]) -> None:
        """Mark ``seqs`` (increasing) pending for ``trigger``."""
        slot = self._slots.get(trigger)
        if slot is None:
            slot = self._slots[trigger] = _Slot()
        have = slot.seqs
        if not have or seqs[0] > have[-1]:
            have.extend(seqs)
            return
        for seq in seqs:  # not after the last (never from the store's own commits)
            if seq in slot.gone:
                slot.gone.discard(seq)  # still in the array: pending again
            elif slot.find(seq) < 0:
                insort(have, seq, lo=slot.head)

    def present(self, trigger: str, seqs: Iterable[int]) -> list[int]:
        """Those of ``seqs`` that ``trigger`` has pending."""
        slot = self._slots.get(trigger)
        if slot is None:
            return []
        have, head, gone = slot.seqs, slot.head, slot.gone
        end = len(have)
        if head < end and have[-1] - have[head] == end - head - 1:
            # The pending seqs are one unbroken run (a trigger whose events matched
            # only it, the common backlog): pending is within the run and not gone,
            # with no search per seq (an ack group is checked on every commit).
            lo, hi = have[head], have[-1]
            if gone:
                return [seq for seq in seqs if lo <= seq <= hi and seq not in gone]
            return [seq for seq in seqs if lo <= seq <= hi]
        out = []
        for seq in seqs:
            i = bisect_left(have, seq, head)
            if i < end and have[i] == seq and seq not in gone:
                out.append(seq)
        return out

    def remove(self, trigger: str, seq: int) -> None:
        """``trigger`` has ``seq`` pending no more (nothing if it had not)."""
        slot = self._slots.get(trigger)
        if slot is None:
            return
        have = slot.seqs
        head = slot.head
        if head < len(have) and have[head] == seq:  # the oldest: the common case
            head += 1
            gone = slot.gone
            if gone:
                while head < len(have) and have[head] in gone:
                    gone.discard(have[head])
                    head += 1
        elif slot.find(seq) >= 0:
            slot.gone.add(seq)
            if len(slot.gone) > _COMPACT and 2 * len(slot.gone) > len(have) - head:
                gone = slot.gone
                slot.seqs = array("q", [s for s in have[head:] if s not in gone])
                slot.head, slot.gone = 0, set()
            return
        else:
            return
        if head == len(have):
            # Nothing pending: the slot stays, empty (at 1,000 triggers with a short
            # backlog each trigger empties and fills again all the time).
            del have[:]
            slot.head = 0
            return
        if head > _COMPACT and 2 * head > len(have):
            del have[:head]
            head = 0
        slot.head = head

    def seqs(self, trigger: str) -> list[int]:
        """Every seq ``trigger`` has pending, in order."""
        slot = self._slots.get(trigger)
        if slot is None:
            return []
        gone = slot.gone
        return [s for s in slot.seqs[slot.head :] if s not in gone]

    def page(self, trigger: str, after_seq: int, limit: int) -> list[int]:
        """Up to ``limit`` seqs of ``trigger`` after ``after_seq``, in order."""
        slot = self._slots.get(trigger)
        if slot is None or limit <= 0:
            return []
        have, gone = slot.seqs, slot.gone
        i = bisect_right(have, after_seq, slot.head)
        if not gone:
            return have[i : i + limit].tolist()
        out: list[int] = []
        end = len(have)
        while i < end and len(out) < limit:
            if have[i] not in gone:
                out.append(have[i])
            i += 1
        return out

    def count(self, trigger: str) -> int:
        slot = self._slots.get(trigger)
        return 0 if slot is None else slot.count()

    def counts(self) -> dict[str, int]:
        return {trigger: slot.count() for trigger, slot in self._slots.items()}
