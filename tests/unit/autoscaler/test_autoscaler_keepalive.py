"""The adaptive keep-alive: ski-rental optimum over idle gaps, and pre-warming."""

from __future__ import annotations

import random

import pytest

from eventing.autoscaler.keepalive import (
    MIN_KEEP_ALIVE,
    KeepAlivePlan,
    plan_keep_alive,
    ski_rental_keep_alive,
)


@pytest.mark.parametrize(
    ("gaps", "cold_cost", "cap", "expected"),
    [
        # cover the three 1 s gaps (3) and pay 1 + 10 for the long one: 14 < 40 (all cold)
        ([1.0, 1.0, 1.0, 100.0], 10.0, 300.0, 1.0),
        # gaps longer than the cold start: never worth keeping warm
        ([50.0, 80.0, 120.0], 10.0, 300.0, 0.0),
        # short gaps, expensive cold starts: cover them all
        ([2.0, 3.0, 4.0], 100.0, 300.0, 4.0),
        # the cap bounds the keep-alive even when covering everything would pay
        ([100.0, 250.0, 500.0], 10_000.0, 300.0, 250.0),
        # a tie keeps the shorter keep-alive: T=0 costs 2 x 5, T=5 costs 5 + 5
        ([5.0, 5.0], 5.0, 300.0, 0.0),
        ([], 10.0, 300.0, 0.0),
    ],
)
def test_ski_rental_optimum(
    gaps: list[float], cold_cost: float, cap: float, expected: float
) -> None:
    assert ski_rental_keep_alive(sorted(gaps), cold_cost, cap) == expected


def test_ski_rental_matches_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(50):
        gaps = sorted(rng.expovariate(1 / 60) for _ in range(rng.randint(1, 40)))
        cold = rng.uniform(1, 200)
        cap = rng.uniform(10, 400)
        best = ski_rental_keep_alive(gaps, cold, cap)

        def cost(t: float, gaps: list[float] = gaps, cold: float = cold) -> float:
            return sum(g if g <= t else t + cold for g in gaps)

        grid = [cap * i / 2000 for i in range(2001)]
        assert cost(best) <= min(cost(t) for t in grid) + 1e-6
        assert best <= cap


def plan(
    gaps: list[float], *, prewarm: bool = True, cost: float = 60.0, startup: float = 0.3
) -> KeepAlivePlan:
    return plan_keep_alive(
        gaps,
        startup=startup,
        cold_start_cost=cost,
        cap=300.0,
        min_samples=3,
        fallback=60.0,
        prewarm=prewarm,
    )


def test_too_few_gaps_fall_back_to_the_cooldown() -> None:
    p = plan([700.0, 700.0])
    assert p.keep_alive == 60.0
    assert p.prewarm_at is None
    assert "2 of 3 idle gaps" in p.basis


def test_keep_alive_has_a_margin_and_a_floor() -> None:
    assert plan([10.0, 10.0, 10.0, 10.0]).keep_alive == pytest.approx(11.0)
    assert plan([400.0, 500.0, 900.0]).keep_alive == MIN_KEEP_ALIVE


def test_periodic_gaps_get_a_prewarm_window() -> None:
    p = plan([597.0, 598.0, 596.5, 597.5, 598.0], startup=5.0)
    assert p.keep_alive == MIN_KEEP_ALIVE
    assert p.prewarm_at == pytest.approx(596.5 * 0.95 - 5.0)
    assert p.prewarm_until == pytest.approx(598.0 * 1.05)
    assert p.in_prewarm_window(580.0)
    assert not p.in_prewarm_window(300.0)
    assert not p.in_prewarm_window(700.0)


def test_no_prewarm_when_gaps_are_spread_or_disabled() -> None:
    rng = random.Random(3)
    random_gaps = [rng.expovariate(1 / 300) + 5 for _ in range(30)]
    assert plan(random_gaps).prewarm_at is None
    assert plan([597.0, 598.0, 596.5, 597.5], prewarm=False).prewarm_at is None


def test_no_prewarm_when_a_cold_start_is_cheaper_than_the_lead() -> None:
    # Leading 5 % of a 600 s gap (30 s) costs more than a 10 s cold start.
    assert plan([597.0, 598.0, 596.5, 597.5], cost=10.0).prewarm_at is None


def test_a_flood_of_short_gaps_does_not_make_it_forget_the_long_ones() -> None:
    """Idle gaps in two clusters: working sessions with hundreds of 5-20 s gaps, and a
    gap of about 600 s between sessions. A plain window of the last 128 gaps forgets
    the long ones during a session; the recorder keeps them (weighted by how often they
    occur), so the plan still pre-warms for the next session."""
    from eventing.autoscaler.measure import ObservationRecorder

    rec = ObservationRecorder(concurrency=1)
    rng = random.Random(7)
    now = 0.0
    for _ in range(6):  # six sessions of 300 short gaps, 600 s apart
        for _ in range(300):
            rec.arrival(now, work_before=0)
            rec.completion(now + 0.5, service_time=0.5, work_after=0)
            now += 0.5 + rng.uniform(5.0, 20.0)
        rec.arrival(now, work_before=0)
        rec.completion(now + 0.5, service_time=0.5, work_after=0)
        now += 0.5 + rng.uniform(590.0, 610.0)
    obs = rec.snapshot(now, backlog=0, in_flight=0, starting=0, ready=1, draining=0)
    plan = plan_keep_alive(
        obs.idle_gaps,
        weights=obs.idle_gap_weights,
        startup=0.3,
        cold_start_cost=60.0,
        cap=300.0,
        min_samples=3,
        fallback=60.0,
        prewarm=True,
    )
    assert plan.keep_alive == pytest.approx(22.0, abs=1.0)  # covers the short cluster
    assert plan.prewarm_at is not None
    assert plan.prewarm_until is not None
    assert plan.prewarm_at <= 590.0 <= 610.0 <= plan.prewarm_until
    # Each kept long gap stands for (at most) one idle period, decayed with age; each of
    # the 128 kept short gaps for several (1,800 seen), so the long ones stay rare.
    pairs = list(zip(obs.idle_gaps, obs.idle_gap_weights, strict=True))
    long_weights = [w for g, w in pairs if g > 60]
    short_weights = [w for g, w in pairs if g <= 60]
    assert len(long_weights) == 5
    assert all(0.1 < w <= 1.0 for w in long_weights)
    assert len(short_weights) == 128
    assert 4.0 < short_weights[0] < 14.0
    assert sum(long_weights) / sum(short_weights) < 1 / 100
