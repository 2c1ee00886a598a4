"""Knative KPA baseline against hand-computed cases from the reference file (§3)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from eventing.autoscaler.baselines.kpa import KpaDecider, KpaPolicy, PodAutoscaler
from eventing.autoscaler.baselines.kpa_window import TimedBuckets


def test_window_average_over_a_partial_window() -> None:
    b = TimedBuckets(60)
    b.record(10.2, 6.0)
    assert b.window_average(10.9) == 6.0  # one bucket since the first write
    b.record(11.5, 2.0)
    b.record(12.1, 1.0)
    assert b.window_average(12.5) == pytest.approx(3.0)  # (6 + 2 + 1) / 3
    # no write for 2 s: the trailing empty buckets are not counted as zeros (yet)
    assert b.window_average(14.0) == pytest.approx(3.0)


def test_window_counts_gaps_inside_the_data_as_zero() -> None:
    b = TimedBuckets(60)
    b.record(0.0, 7.0)
    b.record(3.0, 5.0)  # buckets 1 and 2 were never written: zeros
    assert b.window_average(3.0) == pytest.approx(3.0)  # 12 / 4


def test_window_resets_after_a_full_window_without_data() -> None:
    b = TimedBuckets(60)
    for t in range(60):
        b.record(float(t), 10.0)
    assert b.window_average(59.0) == 10.0
    assert not b.is_empty(119.0)
    assert b.is_empty(120.0)
    assert b.window_average(120.0) == 0.0
    b.record(200.0, 1.0)  # first write after silence: a 1-bucket window again
    assert b.window_average(200.0) == 1.0


def test_same_bucket_values_add_up() -> None:
    b = TimedBuckets(6)
    b.record(5.1, 1.0)  # activator's stat
    b.record(5.9, 0.5)  # pods' scrape in the same second
    assert b.window_average(5.9) == 1.5


def feed(decider: KpaDecider, start: int, end: int, value: float) -> None:
    for t in range(start, end):
        decider.record(float(t), value)


def test_target_is_container_concurrency_times_0_7() -> None:
    assert KpaDecider(4).target == pytest.approx(2.8)
    assert KpaDecider(0).target == pytest.approx(70.0)  # unlimited: 100 x 0.7


def test_stable_window_average_sizes_the_revision() -> None:
    d = KpaDecider(4)
    feed(d, 0, 30, 7.0)
    feed(d, 30, 60, 0.0)
    decision = d.scale(59.0, ready=2)
    assert decision is not None
    assert decision.desired == 2  # avg 3.5 over 60 buckets / 2.8 -> ceil 1.25 = 2
    assert not decision.panicking


def test_panic_entry_and_ratchet() -> None:
    d = KpaDecider(4)
    feed(d, 0, 54, 1.0)
    feed(d, 54, 60, 12.0)  # the last 6 s: 12 concurrent
    first = d.scale(59.0, ready=1)
    assert first is not None
    # panic: ceil(12 / 2.8) = 5 pods wanted per 1 ready >= 200 %
    assert first.panicking
    assert first.desired == 5
    feed(d, 60, 70, 1.0)
    later = d.scale(69.0, ready=5)
    assert later is not None
    assert later.panicking  # 60 s must pass without being over the threshold
    assert later.desired == 5  # ratchet: never scales down while panicking


def test_max_scale_down_rate_halves_per_tick() -> None:
    d = KpaDecider(4)
    feed(d, 0, 60, 0.0)
    decision = d.scale(59.0, ready=10)
    assert decision is not None
    assert decision.desired == 5  # floor(10 / 2): not straight to 0


def test_no_data_means_no_decision() -> None:
    d = KpaDecider(4)
    assert d.scale(0.0, ready=0) is None
    d.record(0.0, 1.0)
    assert d.scale(0.5, ready=0) is not None
    assert d.scale(61.0, ready=0) is None


def test_scale_to_zero_state_machine() -> None:
    pa = PodAutoscaler(status="active", since=0.0, proxy=True, proxy_since=-1000.0)
    # desired 0 but active for less than the stable window: keep one pod
    assert pa.handle_scale_to_zero(30.0, 0) == (1, True)
    # active for the stable window: go inactive first, do not scale yet
    assert pa.handle_scale_to_zero(60.0, 0) == (0, False)
    pa.reconcile(60.0, 0, ebc=-1.0, ready=1)
    assert (pa.status, pa.since) == ("inactive", 60.0)
    # activator has been in the path for >= 30 s: fast path, scale to zero now
    assert pa.handle_scale_to_zero(62.0, 0) == (0, True)


def test_scale_to_zero_waits_the_grace_when_the_activator_just_came_in() -> None:
    pa = PodAutoscaler(status="active", since=0.0, proxy=False, proxy_since=0.0)
    assert pa.handle_scale_to_zero(60.0, 0) == (0, False)
    pa.reconcile(60.0, 0, ebc=5.0, ready=1)  # want 0 puts the activator in: proxy since 60
    assert pa.handle_scale_to_zero(80.0, 0) == (0, False)
    assert pa.handle_scale_to_zero(90.0, 0) == (0, True)  # 30 s grace


def test_activating_never_scales_to_zero() -> None:
    pa = PodAutoscaler(status="activating", since=0.0)
    assert pa.handle_scale_to_zero(5.0, 0) == (-1, False)


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


def test_activator_poke_scales_from_zero_at_once() -> None:
    policy = KpaPolicy(container_concurrency=4)
    policy.start(0.0, random.Random(1))
    assert policy.on_arrival(100.0, FakeView(backlog=1)) == 1
    # while the decider wants > 0, further arrivals do not poke
    assert policy.on_arrival(100.1, FakeView(backlog=2, starting=1, spec_replicas=1)) is None
