"""KEDA + HPA baselines against hand-computed cases from the reference file (§1, §2)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from eventing.autoscaler.baselines.hpa import LegacyHpa, average_value_proposal, scale_up_limit
from eventing.autoscaler.baselines.keda import KedaOperator, KedaPolicy


@pytest.mark.parametrize(
    ("total", "status", "expected"),
    [
        (100, 5, 5),  # ratio 1.00
        (105, 5, 5),  # ratio 1.05: inside the 10 % tolerance, keep
        (109, 5, 5),  # ratio 1.09: still inside
        (111, 5, 6),  # ratio 1.11: ceil(111 / 20) = 6
        (91, 5, 5),  # ratio 0.91: keep
        (89, 5, 5),  # ratio 0.89: ceil(89 / 20) = 5, same count
        (80, 5, 4),  # ratio 0.80: 4
        (0, 5, 0),  # empty queue asks for 0 (HPA minimum clamps later)
        (2500, 5, 125),  # standing backlog: current capacity cancels out
        (40, 0, 2),  # status 0: Go's +Inf ratio, outside tolerance
        (0, 0, 0),  # 0/0: NaN, inside "tolerance", keep 0
    ],
)
def test_average_value_proposal(total: int, status: int, expected: int) -> None:
    assert average_value_proposal(total, 20.0, status) == expected


@pytest.mark.parametrize(("current", "limit"), [(0, 4), (1, 4), (2, 4), (3, 6), (10, 20)])
def test_legacy_scale_up_limit(current: int, limit: int) -> None:
    assert scale_up_limit(current) == limit


def test_hpa_disabled_at_zero() -> None:
    hpa = LegacyHpa(min_replicas=1, max_replicas=100, target=20.0)
    assert hpa.sync(0.0, spec_replicas=0, status_replicas=0, metric=500) == 0


def test_hpa_ramp_is_limited_and_down_is_stabilised_300s() -> None:
    hpa = LegacyHpa(min_replicas=1, max_replicas=100, target=20.0)
    # 1 -> wants ceil(2000/20) = 100, limited to max(2, 4) = 4
    assert hpa.sync(0.0, 1, 1, 2000) == 4
    # 4 -> limited to 8, then 16, 32, 64, 100 (reference §6: 6 syncs to reach 100)
    assert hpa.sync(15.0, 4, 4, 2000) == 8
    assert hpa.sync(30.0, 8, 8, 2000) == 16
    assert hpa.sync(45.0, 16, 16, 2000) == 32
    assert hpa.sync(60.0, 32, 32, 2000) == 64
    assert hpa.sync(75.0, 64, 64, 2000) == 100
    # queue drained: the proposal is 0 but the max recommendation of 300 s holds 100
    assert hpa.sync(90.0, 100, 100, 0) == 100
    assert hpa.sync(374.0, 100, 100, 0) == 100  # 100 recorded at t=75 .. 90 still inside
    assert hpa.sync(391.0, 100, 100, 0) == 1  # all 100s older than 300 s; min 1


def test_hpa_legacy_stabilisation_also_raises_on_stale_recommendations() -> None:
    # behavior=nil: the max of the window applies in both directions (capped by the limit)
    hpa = LegacyHpa(min_replicas=1, max_replicas=100, target=20.0)
    assert hpa.sync(0.0, 1, 1, 140) == 4  # wants 7, limited to 4
    assert hpa.sync(15.0, 4, 4, 10) == 7  # wants 1, but 7 is in the window


def test_hpa_clamps_out_of_range_spec() -> None:
    hpa = LegacyHpa(min_replicas=2, max_replicas=10, target=20.0)
    assert hpa.sync(0.0, 12, 12, 0) == 10
    assert hpa.sync(15.0, 1, 1, 0) == 2


def test_keda_time_to_zero_is_last_active_plus_330s() -> None:
    op = KedaOperator()
    replicas = 0
    polls = [30.0 * k for k in range(15)]
    zero_at = None
    for t in polls:
        active = t == 0.0  # the queue had messages at the poll at t=0 only
        replicas = op.request_scale(t, active, replicas)
        if t == 0.0:
            assert replicas == 1
        if replicas == 0 and zero_at is None and t > 0:
            zero_at = t
    assert op.last_active_time == 0.0
    assert zero_at == 330.0  # 300 is not < 300 (strict); next poll


def test_keda_scales_to_zero_from_any_n_in_one_step() -> None:
    op = KedaOperator(last_active_time=0.0)
    assert op.request_scale(301.0, False, 17) == 0


def test_keda_activation_uses_min_replica_count() -> None:
    assert KedaOperator(min_replica_count=3).request_scale(0.0, True, 0) == 3
    op = KedaOperator(min_replica_count=2)
    assert op.request_scale(0.0, False, 0) == 2  # below min: restore min


@dataclass
class FakeView:
    backlog: int = 0
    in_flight: int = 0
    starting: int = 0
    ready: int = 0
    draining: int = 0
    spec_replicas: int = 0

    def work_integral(self, now: float) -> float:
        return 0.0


class MidPhase(random.Random):
    """Phase offsets in the middle of each period: polls at 15 + 30k, syncs at 7.5 + 15k."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def test_keda_policy_waits_for_its_poll_and_hands_over_to_the_hpa() -> None:
    policy = KedaPolicy()
    policy.start(0.0, MidPhase())
    view = FakeView(backlog=100)
    assert policy.on_arrival(0.0, view) is None  # no push path for queue scalers
    assert policy.next_wakeup() == 7.5
    assert policy.tick(7.5, view) == 0  # HPA sync: disabled at zero
    assert policy.next_wakeup() == 15.0
    assert policy.tick(15.0, view) == 1  # KEDA poll: active, 0 -> 1
    assert policy.next_wakeup() == 22.5
    view = FakeView(backlog=96, in_flight=4, ready=1, spec_replicas=1)
    assert policy.tick(22.5, view) == 4  # HPA: ceil(100 / 20) = 5, limited to max(2, 4)
