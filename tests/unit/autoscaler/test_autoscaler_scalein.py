"""The scale-in rule never stops a busy replica, for any replica states (hypothesis),
and takes starting, then idle, replicas before it drains a busy one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventing.autoscaler.scalein import ReplicaLoad, plan_scale_in

loads = st.lists(
    st.tuples(
        st.sampled_from(["starting", "ready"]),
        st.integers(min_value=0, max_value=8),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
    ),
    max_size=40,
).map(
    lambda rows: [
        ReplicaLoad(key=i, phase=phase, in_flight=0 if phase == "starting" else n, created=t)  # type: ignore[arg-type]
        for i, (phase, n, t) in enumerate(rows)
    ]
)


@given(loads, st.integers(min_value=-2, max_value=50))
def test_a_busy_replica_is_never_chosen_for_termination(
    replicas: list[ReplicaLoad], count: int
) -> None:
    plan = plan_scale_in(replicas, count)
    by_key = {r.key: r for r in replicas}
    assert all(by_key[k].in_flight == 0 for k in plan.stop)
    assert all(by_key[k].in_flight > 0 for k in plan.drain)
    assert len(set(plan.chosen)) == len(plan.chosen) == min(max(count, 0), len(replicas))
    free = [r for r in replicas if r.in_flight == 0]
    # Busy replicas are drained only when the idle and starting ones do not suffice,
    # and then the least busy go first.
    if plan.drain:
        assert len(plan.stop) == len(free)
        drained = sorted(by_key[k].in_flight for k in plan.drain)
        kept = [r.in_flight for r in replicas if r.in_flight > 0 and r.key not in plan.drain]
        assert not kept or max(drained) <= min(kept)
    else:
        assert len(plan.stop) == min(max(count, 0), len(free))


def test_starting_then_idle_newest_first() -> None:
    replicas = [
        ReplicaLoad(1, "ready", 0, created=1.0),
        ReplicaLoad(2, "ready", 0, created=2.0),
        ReplicaLoad(3, "starting", 0, created=0.5),
        ReplicaLoad(4, "ready", 2, created=3.0),
        ReplicaLoad(5, "ready", 1, created=0.0),
    ]
    assert plan_scale_in(replicas, 3).chosen == (3, 2, 1)
    plan = plan_scale_in(replicas, 4)
    assert (plan.stop, plan.drain) == ((3, 2, 1), (5,))
