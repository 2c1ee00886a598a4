"""How long an idle workload stays up before going to zero, learned from its idle gaps.

Why this and not a fixed cooldown: KEDA keeps a replica 300-330 s after the queue drains
and Knative about 60-90 s, whatever the workload does. For a trigger whose events come
every ten minutes both are pure waste; for one with gaps of 20 s both are fine. The
trade-off is the classic ski-rental problem (reference §4.2): keeping a replica warm
costs one replica-second per second; letting it go costs a cold start, which we price
at ``C = startup time + cold_start_cost`` replica-seconds. Given the empirical
distribution of this trigger's recent idle gaps ``g``, the keep-alive ``T`` that
minimises the expected cost

    E[min(g, T)] + C·P(g > T)    (a miss also paid T of idle before going to zero)

is one of the observed gaps (the cost is piecewise linear between them) or 0, so we
evaluate every candidate after sorting: O(n log n) for n <= 128 gaps.

Periodic sources (cron, timers) have long gaps clustered tightly around the period;
there neither "keep warm" nor "go cold" is good. Like the hybrid-histogram policy of
Shahrad et al. (ATC'20) we then *pre-warm*: scale to zero after the work and start one
replica shortly before the next expected arrival (the cluster's 10th percentile minus
the measured startup time and a 5 % margin), keeping it until the cluster's 90th
percentile plus 5 %. Pre-warming is chosen only when the same cost function says it is
cheaper than the cold starts it avoids. Unlike the hybrid histogram we keep raw recent
gaps instead of 1-minute bins (our gaps are seconds, not minutes) and have no ARIMA
branch: gaps beyond the cap are simply cold starts.

The plan is recomputed only when the gap history or the cold-start price changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

KEEP_ALIVE_MARGIN = 0.10
"""Extra keep-alive beyond the chosen gap, so a slightly longer gap is still a hit."""

PREWARM_MARGIN = 0.05
"""How early (as a fraction of the expected gap) a pre-warmed replica is started."""

PREWARM_MIN_GAPS = 3
"""Long gaps needed before a pre-warm window is considered."""

MIN_KEEP_ALIVE = 2.0
"""Shortest adaptive keep-alive. Gaps under a second are not recorded as idle periods
(:mod:`eventing.autoscaler.measure`), so the optimisation assumes they are covered;
this floor (two 1 s ticks) makes that true instead of going cold inside a burst."""


@dataclass(frozen=True, slots=True)
class KeepAlivePlan:
    """What to do once the workload runs out of work; times are seconds since idle."""

    keep_alive: float
    """Scale to zero once idle this long."""

    basis: str
    """Why, in words, for the decision's reason."""

    prewarm_at: float | None = None
    """Start one replica this long after idle began (``None``: no pre-warming)."""

    prewarm_until: float | None = None
    """Give the pre-warmed replica up this long after idle began."""

    def in_prewarm_window(self, idle_for: float) -> bool:
        """Whether a replica should be up at ``idle_for`` seconds of idleness."""
        if self.prewarm_at is None or self.prewarm_until is None:
            return False
        return self.prewarm_at <= idle_for < self.prewarm_until


def fixed_plan(keep_alive: float, basis: str) -> KeepAlivePlan:
    """A constant keep-alive, without pre-warming."""
    return KeepAlivePlan(keep_alive=keep_alive, basis=basis)


def _quantile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank quantile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(p * len(sorted_values)))
    return sorted_values[rank - 1]


def _weighted_quantile(pairs: Sequence[tuple[float, float]], p: float) -> float:
    """Nearest-rank quantile of ascending (value, weight) pairs with positive weights."""
    total = sum(w for _, w in pairs)
    acc = 0.0
    for value, weight in pairs:
        acc += weight
        if acc >= p * total - 1e-9:
            return value
    return pairs[-1][0]


def ski_rental_keep_alive(
    sorted_gaps: Sequence[float],
    cold_cost: float,
    cap: float,
    weights: Sequence[float] | None = None,
) -> float:
    """The keep-alive in ``{0} ∪ gaps ∪ {cap}`` (all <= cap) minimising the expected cost.

    ``cost(T) = sum(w·g for g <= T) + (T + cold_cost) · sum(w for g > T)``, each gap
    counted with its weight (1 when ``weights`` is ``None``). Ties keep the shorter
    keep-alive. Returns the bare optimum, without margin.
    """
    n = len(sorted_gaps)
    w = [1.0] * n if weights is None else list(weights)
    total = sum(w)
    best_t, best_cost = 0.0, total * cold_cost
    covered_sum = covered_weight = 0.0
    i = 0
    candidates = [g for g in sorted_gaps if g <= cap]
    candidates.append(cap)
    for t in candidates:
        while i < n and sorted_gaps[i] <= t:
            covered_sum += w[i] * sorted_gaps[i]
            covered_weight += w[i]
            i += 1
        cost = covered_sum + (total - covered_weight) * (t + cold_cost)
        if cost < best_cost - 1e-9:
            best_t, best_cost = t, cost
    return best_t


def _prewarm_window(
    long_gaps: Sequence[tuple[float, float]], startup: float, cold_cost: float
) -> tuple[float, float] | None:
    """A pre-warm window for the (gap, weight) pairs a keep-alive does not cover, if it
    pays: from the 10th percentile (less 5 % and the startup time) to the 90th (plus
    5 %), chosen only when its expected cost is below going cold on every one."""
    if len(long_gaps) < PREWARM_MIN_GAPS:
        return None
    low, high = _weighted_quantile(long_gaps, 0.10), _weighted_quantile(long_gaps, 0.90)
    start = max(0.0, low * (1 - PREWARM_MARGIN) - startup)
    until = high * (1 + PREWARM_MARGIN)
    with_prewarm = total = 0.0
    for g, w in long_gaps:
        total += w
        if g < start:
            with_prewarm += w * cold_cost
        elif g <= until:
            with_prewarm += w * (g - start)
        else:
            with_prewarm += w * ((until - start) + cold_cost)
    if with_prewarm >= total * cold_cost:
        return None
    return start, until


def plan_keep_alive(
    gaps: Sequence[float],
    *,
    startup: float,
    cold_start_cost: float,
    cap: float,
    min_samples: int,
    fallback: float,
    prewarm: bool,
    weights: Sequence[float] | None = None,
) -> KeepAlivePlan:
    """The adaptive keep-alive for a trigger with these recent idle ``gaps`` (seconds).

    ``weights`` (one per gap, default 1) say how many idle periods each kept gap stands
    for: the recorder keeps long gaps apart from short ones so a flood of short gaps
    cannot flush the rare long ones from its memory, and weighs each class by how often
    it really occurs (see :mod:`eventing.autoscaler.measure`).
    """
    if len(gaps) < min_samples:
        return fixed_plan(
            fallback, f"cooldown; {len(gaps)} of {min_samples} idle gaps needed to adapt"
        )
    cold_cost = startup + cold_start_cost
    w = [1.0] * len(gaps) if weights is None else list(weights)
    pairs = sorted(zip(gaps, w, strict=True))
    ordered = [g for g, _ in pairs]
    bare = ski_rental_keep_alive(ordered, cold_cost, cap, [x for _, x in pairs])
    keep_alive = min(cap, max(MIN_KEEP_ALIVE, bare * (1 + KEEP_ALIVE_MARGIN)))
    covered = sum(1 for g in ordered if g <= keep_alive)
    basis = (
        f"adaptive: covers {covered} of {len(ordered)} recent idle gaps, "
        f"cold start priced {cold_cost:.0f} s"
    )
    if prewarm:
        long_gaps = [(g, x) for g, x in pairs if g > keep_alive]
        window = _prewarm_window(long_gaps, startup, cold_cost)
        if window is not None and window[0] > keep_alive:
            return KeepAlivePlan(
                keep_alive=keep_alive,
                basis=basis,
                prewarm_at=window[0],
                prewarm_until=window[1],
            )
    return fixed_plan(keep_alive, basis)
