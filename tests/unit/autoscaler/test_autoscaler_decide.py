"""Table-driven tests of the pure decision function, with a fake clock (plain floats)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventing.autoscaler import DeciderState, Decision, Observations, ScalingSpec, decide

SPEC = ScalingSpec(
    concurrency_per_replica=1,
    target_utilization=0.8,
    drain_horizon=10.0,
    keep_alive="fixed",
    scale_to_zero_after=60.0,
)


def run(
    spec: ScalingSpec, steps: list[tuple[float, Observations]], state: DeciderState | None = None
) -> list[Decision]:
    """Feed observations at increasing times, carrying the state like the runtime does."""
    state = state or DeciderState()
    out = []
    for now, obs in steps:
        d = decide(spec, obs, now, state)
        out.append(d)
        state = d.state
    return out


@pytest.mark.parametrize(
    ("obs", "replicas", "reason_part"),
    [
        # 40/s x 0.05 s / 0.8 = 2.5, + 120 x 0.05 / 10 = 0.6 -> 3.1 -> 4, at once
        (
            Observations(backlog=120, in_flight=2, arrival_rate=40, service_rate=20, ready=2),
            4,
            "scale up 2 -> 4",
        ),
        # the same need with 2 replicas already starting: nothing more is requested
        (
            Observations(
                backlog=120, in_flight=2, arrival_rate=40, service_rate=20, ready=2, starting=2
            ),
            4,
            "(2 starting counted)",
        ),
        # one starting: one more, not two
        (
            Observations(
                backlog=120, in_flight=1, arrival_rate=40, service_rate=20, ready=1, starting=2
            ),
            4,
            "scale up 3 -> 4",
        ),
        # no service time measured yet: a slot for every event, (backlog + in flight) / c
        (Observations(backlog=9, in_flight=1, ready=1), 10, "no service time measured yet"),
    ],
)
def test_sizing_and_scale_up_at_once(obs: Observations, replicas: int, reason_part: str) -> None:
    d = decide(SPEC, obs, 100.0, DeciderState(last_active=99.0))
    assert d.replicas == replicas
    assert reason_part in d.reason


def test_reason_spells_out_the_arithmetic() -> None:
    obs = Observations(backlog=120, arrival_rate=40, service_rate=20, ready=2)
    reason = decide(SPEC, obs, 0.0, DeciderState()).reason
    assert "arrival 40.0/s x 0.050 s/event / 0.8 = 2.5" in reason
    assert "backlog 120 x 0.050 s / 10 s = 0.6" in reason


def test_stabilisation_holds_then_scales_down_to_window_max() -> None:
    busy = Observations(arrival_rate=80, service_rate=20, in_flight=4, ready=5)  # needs 5
    calm = replace(busy, arrival_rate=24, in_flight=1)  # needs 2 (24 x 0.05 / 0.8 = 1.5)
    middle = replace(busy, arrival_rate=40, in_flight=1)  # needs 3 (2.5)
    decisions = run(
        SPEC,
        [
            (0.0, busy),
            (10.0, calm),
            (15.0, replace(middle)),
            (29.0, calm),
            (31.0, calm),  # the 5 left the 30 s window; 3 (t=15) is still in it
            (46.0, calm),  # the 3 left too
        ],
    )
    assert [d.replicas for d in decisions] == [5, 5, 5, 5, 3, 2]
    assert "within stabilisation window (max recommendation 5 in last 30 s" in decisions[1].reason
    assert decisions[4].reason.startswith("scale down 5 -> 3: max recommendation 3 in last 30 s")


def test_scale_up_is_never_delayed_by_the_window() -> None:
    low = Observations(arrival_rate=10, service_rate=20, in_flight=1, ready=1)
    high = replace(low, arrival_rate=100)
    decisions = run(SPEC, [(0.0, low), (1.0, high)])
    assert [d.replicas for d in decisions] == [1, 7]


@pytest.mark.parametrize(
    ("now", "replicas"),
    [(120.0, 1), (159.9, 1), (160.0, 0), (500.0, 0)],
)
def test_fixed_keep_alive_scales_to_zero_after_idle_and_not_before(
    now: float, replicas: int
) -> None:
    idle = Observations(ready=1, last_activity=100.0, last_arrival=99.0)
    d = decide(SPEC, idle, now, DeciderState(last_active=100.0))
    assert d.replicas == replicas
    if replicas == 0:
        assert d.reason.startswith(f"scale to zero: idle {now - 100:.0f} s >= keep-alive 60 s")


@pytest.mark.parametrize(
    ("threshold", "backlog", "replicas", "reason_part"),
    [
        (0.0, 0, 0, "hold at zero: no events"),
        (0.0, 1, 1, "activate 0 -> 1: backlog 1 + in flight 0 > activation threshold 0"),
        (5.0, 5, 0, "hold at zero: backlog 5 + in flight 0 <= activation threshold 5"),
        (5.0, 6, 6, "activate 0 -> 6"),  # 6 events / concurrency 1, straight away
    ],
)
def test_activation_threshold_governs_zero_to_one(
    threshold: float, backlog: int, replicas: int, reason_part: str
) -> None:
    spec = replace(SPEC, activation_threshold=threshold)
    d = decide(spec, Observations(backlog=backlog), 10.0, DeciderState())
    assert d.replicas == replicas
    assert reason_part in d.reason


def test_inactive_below_threshold_goes_to_zero_even_with_events_waiting() -> None:
    # KEDA: "the activation value has more priority than the scaling value".
    spec = replace(SPEC, activation_threshold=50.0, target_per_replica=10.0)
    waiting = Observations(backlog=40, ready=4, service_rate=20)
    decisions = run(spec, [(0.0, replace(waiting, backlog=60)), (30.0, waiting), (61.0, waiting)])
    assert [d.replicas for d in decisions] == [6, 4, 0]
    assert "backlog 40 <= activation threshold 50" in decisions[2].reason


def test_keda_target_per_replica_is_a_floor() -> None:
    spec = replace(SPEC, target_per_replica=20.0)
    obs = Observations(backlog=100, arrival_rate=1, service_rate=20, ready=1)
    d = decide(spec, obs, 0.0, DeciderState())
    assert d.replicas == 5
    assert "target 20/replica" in d.reason


@pytest.mark.parametrize(
    ("spec", "obs", "replicas"),
    [
        (replace(SPEC, max_replicas=10), Observations(backlog=10_000, ready=1), 10),
        (replace(SPEC, min_replicas=2), Observations(), 2),  # at zero: straight to min
        (replace(SPEC, min_replicas=2), Observations(ready=2, last_activity=0.0), 2),
        (ScalingSpec(), Observations(backlog=10_000, ready=1), 100),  # KEDA's default max
    ],
)
def test_clamped_to_min_and_max(spec: ScalingSpec, obs: Observations, replicas: int) -> None:
    assert decide(spec, obs, 1000.0, DeciderState()).replicas == replicas


def test_min_replicas_never_scale_to_zero() -> None:
    spec = replace(SPEC, min_replicas=1)
    idle = Observations(ready=1, last_activity=0.0)
    assert decide(spec, idle, 10_000.0, DeciderState(last_active=0.0)).replicas == 1


def test_external_source_activity_overrides_our_threshold() -> None:
    obs = Observations(backlog=3, source_active=False)
    assert decide(SPEC, obs, 0.0, DeciderState()).replicas == 0
    assert decide(SPEC, replace(obs, source_active=True), 0.0, DeciderState()).replicas >= 1


def test_decide_is_pure() -> None:
    obs = Observations(backlog=7, arrival_rate=3, service_rate=2, ready=1, idle_gaps=(5.0,) * 9)
    spec = ScalingSpec()
    state = DeciderState(recommendations=((0.0, 3),), last_active=1.0)
    first, second = decide(spec, obs, 5.0, state), decide(spec, obs, 5.0, state)
    assert first == second
    assert state == DeciderState(recommendations=((0.0, 3),), last_active=1.0)


ADAPTIVE = ScalingSpec(concurrency_per_replica=1, cold_start_cost=60.0)


def test_adaptive_keep_alive_covers_short_regular_gaps() -> None:
    gaps = (4.0, 5.0, 4.5, 5.0, 4.8, 5.0)
    idle = Observations(
        ready=1, service_rate=10, startup_time=0.3, last_activity=0.0, idle_gaps=gaps
    )
    at_4 = decide(ADAPTIVE, idle, 4.0, DeciderState(last_active=0.0))
    at_6 = decide(ADAPTIVE, idle, 6.0, at_4.state)
    assert at_4.replicas == 1
    assert at_6.replicas == 0
    assert "keep-alive 5.5 s (adaptive: covers 6 of 6 recent idle gaps" in at_6.reason


def test_adaptive_keep_alive_goes_cold_fast_on_long_random_gaps() -> None:
    gaps = (30.0, 400.0, 95.0, 700.0, 210.0, 1500.0, 60.0, 330.0)
    idle = Observations(
        ready=1, service_rate=10, startup_time=0.3, last_activity=0.0, idle_gaps=gaps
    )
    d = decide(ADAPTIVE, idle, 2.0, DeciderState(last_active=0.0))
    assert d.replicas == 0
    assert "keep-alive 2.0 s" in d.reason


def test_adaptive_keep_alive_uses_cooldown_until_enough_gaps() -> None:
    idle = Observations(ready=1, service_rate=10, last_activity=0.0, idle_gaps=(900.0,))
    assert decide(ADAPTIVE, idle, 59.0, DeciderState(last_active=0.0)).replicas == 1
    d = decide(ADAPTIVE, idle, 60.0, DeciderState(last_active=0.0))
    assert d.replicas == 0
    assert "cooldown; 1 of 3 idle gaps needed to adapt" in d.reason


def test_prewarm_for_periodic_gaps() -> None:
    gaps = (597.0, 598.0, 596.5, 597.5, 598.0)
    base = Observations(service_rate=10, startup_time=0.3, last_activity=0.0, idle_gaps=gaps)
    state = DeciderState(last_active=0.0)
    gone = decide(ADAPTIVE, replace(base, ready=1), 3.0, state)
    early = decide(ADAPTIVE, base, 500.0, gone.state)
    warm = decide(ADAPTIVE, base, 570.0, early.state)
    kept = decide(ADAPTIVE, replace(base, ready=1), 600.0, warm.state)
    late = decide(ADAPTIVE, replace(base, ready=1), 700.0, kept.state)
    assert [d.replicas for d in (gone, early, warm, kept, late)] == [0, 0, 1, 1, 0]
    assert warm.reason.startswith("pre-warm 0 -> 1: pre-warm, idle 570 s")


def test_keep_alive_plan_is_carried_in_the_state() -> None:
    gaps = (5.0,) * 6
    obs = Observations(ready=1, service_rate=10, last_activity=0.0, idle_gaps=gaps)
    d = decide(ADAPTIVE, obs, 1.0, DeciderState(last_active=0.0))
    assert d.state.plan is not None
    assert d.state.plan_key is not None
    again = decide(ADAPTIVE, obs, 2.0, d.state)
    assert again.state.plan is d.state.plan  # not recomputed while the gaps are unchanged


def test_keda_compatible_fields_behave_as_keda_users_expect() -> None:
    # A translated ScaledObject: cooldownPeriod 300, queueLength 20, activationValue 0.
    keda_like = ScalingSpec(
        keep_alive="fixed",
        scale_to_zero_after=300.0,
        target_per_replica=20.0,
        max_replicas=10,
        polling_interval=30.0,  # accepted, ignored
    )
    waiting = Observations(backlog=100, service_rate=10)  # our sizing alone: 1 replica
    assert decide(keda_like, waiting, 0.0, DeciderState()).replicas == 100 // 20
    idle = Observations(ready=3, last_activity=0.0, service_rate=10)
    assert decide(keda_like, idle, 299.0, DeciderState(last_active=0.0)).replicas >= 1
    gone = decide(keda_like, idle, 300.0, DeciderState(last_active=0.0))
    assert gone.replicas == 0  # from 3 straight to 0, like KEDA after its cooldown
    assert "(cooldownPeriod 300 s)" in gone.reason


@settings(max_examples=300, deadline=None)
@given(
    backlog=st.integers(0, 10_000),
    in_flight=st.integers(0, 400),
    arrival=st.floats(0, 1e4),
    service_rate=st.one_of(st.none(), st.floats(0.01, 1e4)),
    starting=st.integers(0, 50),
    ready=st.integers(0, 50),
    min_replicas=st.integers(0, 5),
    threshold=st.floats(0, 50),
    gaps=st.lists(st.floats(1, 5000), max_size=20),
    idle=st.floats(0, 5000),
)
def test_decision_is_always_within_bounds(
    backlog: int,
    in_flight: int,
    arrival: float,
    service_rate: float | None,
    starting: int,
    ready: int,
    min_replicas: int,
    threshold: float,
    gaps: list[float],
    idle: float,
) -> None:
    spec = ScalingSpec(min_replicas=min_replicas, max_replicas=20, activation_threshold=threshold)
    obs = Observations(
        backlog=backlog,
        in_flight=in_flight,
        arrival_rate=arrival,
        service_rate=service_rate,
        starting=starting,
        ready=ready,
        last_activity=0.0,
        idle_gaps=tuple(gaps),
    )
    d = decide(spec, obs, idle, DeciderState(last_active=0.0))
    assert min_replicas <= d.replicas <= 20
    if backlog + in_flight > threshold:
        assert d.replicas >= 1  # active work is never left without a replica
    assert d.reason
