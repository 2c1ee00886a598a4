"""The in-memory per-trigger index of pending seqs equals a plain set model under any
sequence of appends (increasing seqs, as the store's commits give them), removals of
pending or absent seqs in any order, pages and releases; its compactions included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eventing.broker import pending_index
from eventing.broker.pending_index import PendingIndex

TRIGGERS = ("a", "b", "c")

_op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(TRIGGERS), st.integers(1, 40)),
    st.tuples(st.just("remove"), st.sampled_from(TRIGGERS), st.integers(0, 400)),
    st.tuples(st.just("oldest"), st.sampled_from(TRIGGERS), st.integers(1, 30)),
    st.tuples(st.just("release"), st.sampled_from(TRIGGERS), st.just(0)),
)


def check(index: PendingIndex, model: dict[str, set[int]], after: int) -> None:
    for trigger in TRIGGERS:
        want = sorted(model[trigger])
        assert index.count(trigger) == len(want)
        assert index.seqs(trigger) == want
        assert index.page(trigger, after, 7) == [s for s in want if s > after][:7]
        assert index.present(trigger, range(after, after + 50)) == [
            s for s in range(after, after + 50) if s in model[trigger]
        ]
        acks = [*range(after + 40, after - 10, -3), after, after, 0, -1]  # any order
        assert index.present(trigger, acks) == [s for s in acks if s in model[trigger]]
    assert {t: n for t, n in index.counts().items() if n} == {
        t: len(s) for t, s in model.items() if s
    }


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(_op, max_size=80), after=st.integers(0, 300))
def test_the_index_equals_a_set_model(ops: list[tuple[str, str, int]], after: int) -> None:
    pending_index._COMPACT = 4  # compact often, so the examples reach it
    try:
        index = PendingIndex()
        model: dict[str, set[int]] = {t: set() for t in TRIGGERS}
        seq = 1
        for kind, trigger, n in ops:
            if kind == "add":  # n new seqs, some of them skipped (other triggers')
                seqs = list(range(seq, seq + n, 1 + n % 3))
                seq += n
                index.add(trigger, seqs)
                model[trigger].update(seqs)
            elif kind == "remove":  # any seq, pending or not
                index.remove(trigger, n)
                model[trigger].discard(n)
            elif kind == "oldest":  # the common case: acks in order
                for s in sorted(model[trigger])[:n]:
                    index.remove(trigger, s)
                    model[trigger].discard(s)
            else:
                for s in index.seqs(trigger):
                    index.remove(trigger, s)
                model[trigger].clear()
            check(index, model, after)
    finally:
        pending_index._COMPACT = 1024


def test_a_seq_added_again_out_of_order_is_pending_once() -> None:
    index = PendingIndex()
    index.add("a", [1, 2, 3, 4])
    index.remove("a", 3)
    index.add("a", [3, 2, 0])  # not from the store's commits, but kept consistent
    assert index.seqs("a") == [0, 1, 2, 3, 4]
    assert index.count("a") == 5
