"""The scaling decision: a pure function of spec, observations, time and carried state.

Why pure: the same function runs in the production loop (ticking every second and
poked by the broker on the first event for a workload at zero), in the simulator that
compares it with KEDA and Knative, and in table-driven tests with a fake clock. All it
must remember between ticks (recent recommendations, when the workload was last active,
the keep-alive plan) travels in the immutable :class:`DeciderState` it returns.

The policy (docs/autoscaling.md):

1. Size on rates. With ``w = 1 / service_rate`` replica-seconds per event, Little's law
   gives ``arrival_rate * w / target_utilization`` replicas for the steady flow, plus
   ``backlog * w / drain_horizon`` to drain what is waiting. Before any service time
   has been measured, fall back to concurrency, a slot for every event:
   ``(backlog + in_flight) / concurrency`` (without a service time there is no rate to
   leave headroom on). A KEDA-style ``target_per_replica`` is a floor. Starting
   replicas count as capacity, so they are never requested twice.
2. Scale up at once; scale down only to the highest recommendation of the
   stabilisation window.
3. Activation (0 <-> 1) follows KEDA: from zero only when ``backlog + in_flight >
   activation_threshold``, and straight away (the broker pokes us). Going to zero
   happens only through the keep-alive, after the workload has been inactive that long
   (fixed, or adaptive from its idle gaps, see :mod:`eventing.autoscaler.keepalive`).
4. Clamp to ``[min_replicas, max_replicas]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from eventing.autoscaler.keepalive import KeepAlivePlan, fixed_plan, plan_keep_alive
from eventing.autoscaler.observe import Observations
from eventing.autoscaler.spec import ScalingSpec

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class DeciderState:
    """What one decision hands to the next. Start with ``DeciderState()``."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, recommendation) pairs of the stabilisation window, kept as a monotone
    queue: times increase and recommendations strictly decrease, so the first entry is
    the window's maximum."""

    last_active: float | None = None
    """Last time the workload was active (the idle clock's start)."""

    plan: KeepAlivePlan | None = None
    """The keep-alive plan currently in force."""

    plan_key: tuple[tuple[float, ...], tuple[float, ...], float] | None = None
    """(idle gaps, their weights, cold-start price) the plan was computed from;
    recomputed on change."""


@dataclass(frozen=True, slots=True)
class Decision:
    """How many replicas (starting + ready) the workload should have, and why."""

    replicas: int
    reason: str
    state: DeciderState


DECISION_INTERVAL = 1.0
"""Seconds between the runtime's decisions (its tick): replicas asked for now can take
events no earlier than this plus a startup, which bounds what a burst may ask for."""


def size(spec: ScalingSpec, obs: Observations) -> tuple[float, str]:
    """Replicas the load needs (fractional) and the arithmetic in words.

    ``needed = max(min(in flight + drain, useful), min(flow + drain, useful))``, see
    :func:`demand`.
    """
    rate_need, running, why = demand(spec, obs)
    return max(rate_need, running), why


def demand(spec: ScalingSpec, obs: Observations) -> tuple[float, float, str]:
    """``(rate need, in-flight floor, why)``: what the load needs, and what the work
    already running holds, in replicas.

    With a measured service time ``S`` (``w = S / concurrency`` replica-seconds per
    event):

    - *flow*: ``arrival x w / targetUtilization`` (Little's law with headroom);
    - *drain*: ``backlog x w / H`` with ``H = max(drainHorizonSeconds, S)``: a backlog
      cannot drain faster than one service time, so for long work every waiting event
      gets a slot and no more;
    - *useful*: at most ``(backlog + in flight + steady arrival x (startup + 1 s)) /
      concurrency``: a replica beyond the events that exist, or arrive before it could
      be ready, would only idle. The long-window rate predicts those arrivals, not a
      burst's own rate (12 jobs at once do not announce 12 more). Short work never
      meets this bound (its arrivals during a startup cover the headroom); a burst of
      long jobs does, so 12 jobs ask for 12 replicas, not 12 plus the flow the
      burst's rate suggests;
    - *in flight*: at least ``in flight / concurrency + drain`` (within *useful*,
      rounded down to whole replicas but never below ``in flight / concurrency``
      rounded up): work
      already running is demand whatever the rate estimate says, so a replica holding
      work is not asked to go, and what waits behind it still gets its slots.

    The rate need goes through the stabilisation window and the hysteresis; the floor
    applies to each decision on its own (the busiest moment of a window must not hold
    replicas once their work is done).
    """
    rho = spec.target_utilization
    c = spec.concurrency_per_replica
    if obs.service_rate is not None and obs.service_rate > 0:
        w = 1.0 / obs.service_rate
        service = w * c
        flow = obs.arrival_rate * w / rho
        horizon = max(spec.drain_horizon, service)
        drain = obs.backlog * w / horizon
        startup = obs.startup_time or 0.0
        # Whole events: 0.3 of an event expected within a startup is no reason for a
        # replica of its own.
        steady = obs.arrival_rate if obs.steady_arrival_rate is None else obs.steady_arrival_rate
        expected = float(math.floor(steady * (startup + DECISION_INTERVAL) + 0.5))
        useful = (obs.work + expected) / c
        # Whole replicas only (but never below the replicas the work in flight fills):
        # for long work each waiting event is a whole replica's drain; for short work a
        # few events waiting a moment behind busy replicas are not (the rate sizing,
        # which is stabilised, gives them their fraction).
        held = math.ceil(obs.in_flight / c - _EPS)
        running = float(max(held, math.floor(min(obs.in_flight / c + drain, useful) + _EPS)))
        need = min(flow + drain, useful)
        why = (
            f"arrival {obs.arrival_rate:.1f}/s x {w:.3f} s/event / {rho:g} = {flow:.1f}"
            f" + backlog {obs.backlog} x {w:.3f} s / {horizon:.4g} s = {drain:.1f}"
        )
        if useful < flow + drain:
            why += (
                f", at most useful (backlog {obs.backlog} + in flight {obs.in_flight}"
                f" + {expected:.0f} arriving within startup) / {c} = {useful:.1f}"
            )
        if running > need:
            why += (
                f", at least in flight {obs.in_flight} / {c} + {drain:.1f} for the backlog"
                f" = {running:.0f} (whole replicas)"
            )
    else:
        running = obs.in_flight / c
        need = obs.work / c
        why = (
            f"no service time measured yet: (backlog {obs.backlog} + in flight "
            f"{obs.in_flight}) / concurrency {c} = {need:.1f}"
        )
    target = spec.target_per_replica
    if target is not None and obs.work / target > need:
        need = obs.work / target
        why = f"target {target:g}/replica: backlog + in flight {obs.work} / {target:g} = {need:.1f}"
    return need, running, why


def _last_active(
    spec: ScalingSpec, obs: Observations, now: float, state: DeciderState, active: bool
) -> float | None:
    if active:
        return now
    exact_idle_clock = obs.source_active is None and spec.activation_threshold == 0
    if exact_idle_clock and obs.last_activity is not None:
        # No work at all: the recorder knows the exact moment the last event finished,
        # which is sharper than our tick.
        if state.last_active is None:
            return obs.last_activity
        return max(state.last_active, obs.last_activity)
    return state.last_active


def _plan(
    spec: ScalingSpec, obs: Observations, state: DeciderState
) -> tuple[KeepAlivePlan, DeciderState]:
    """The keep-alive plan for these observations, and ``state`` caching it."""
    if spec.keep_alive == "fixed":
        if state.plan is None:
            basis = f"cooldownPeriod {spec.scale_to_zero_after:g} s"
            plan = fixed_plan(spec.scale_to_zero_after, basis)
            return plan, replace(state, plan=plan)
        return state.plan, state
    startup = obs.startup_time or 0.0
    key = (obs.idle_gaps, obs.idle_gap_weights, round(startup + spec.cold_start_cost, 1))
    if state.plan is not None and state.plan_key is not None:
        cached_gaps, cached_weights, cached_cost = state.plan_key
        if (
            cached_cost == key[2]
            and (cached_gaps is key[0] or cached_gaps == key[0])
            and (cached_weights is key[1] or cached_weights == key[1])
        ):
            return state.plan, state
    plan = plan_keep_alive(
        obs.idle_gaps,
        startup=startup,
        cold_start_cost=spec.cold_start_cost,
        cap=spec.keep_alive_max,
        min_samples=spec.keep_alive_min_samples,
        fallback=spec.scale_to_zero_after,
        prewarm=spec.prewarm,
        weights=obs.idle_gap_weights or None,
    )
    return plan, replace(state, plan=plan, plan_key=key)


def _push(
    history: tuple[tuple[float, int], ...], now: float, rec: int, window: float
) -> tuple[tuple[float, int], ...]:
    """Add ``rec`` to the monotone max-queue and drop what left the window."""
    kept = [(t, r) for (t, r) in history if r > rec and t >= now - window]
    kept.append((now, rec))
    return tuple(kept)


def decide(spec: ScalingSpec, obs: Observations, now: float, state: DeciderState) -> Decision:
    """Decide the replica count (starting + ready) for one workload at ``now``."""
    work = obs.work
    active = work > spec.activation_threshold if obs.source_active is None else obs.source_active
    plan, state = _plan(spec, obs, state)
    state = replace(state, last_active=_last_active(spec, obs, now, state, active))
    need, running, why = demand(spec, obs)
    floor = min(math.ceil(running - _EPS), spec.max_replicas)
    rec = _clamp(spec, max(math.ceil(need - _EPS), floor))
    idle_for = now - obs.last_activity if obs.last_activity is not None and work == 0 else 0.0
    prewarming = (
        spec.scales_to_zero and not active and work == 0 and plan.in_prewarm_window(idle_for)
    )
    if obs.replicas == 0:
        return _at_zero(spec, obs, now, state, active, prewarming, rec, why, idle_for)
    return _running(spec, obs, now, state, active, prewarming, why, idle_for, need, floor)


def _clamp(spec: ScalingSpec, replicas: int) -> int:
    return min(max(replicas, spec.min_replicas, 1), spec.max_replicas)


def _at_zero(
    spec: ScalingSpec,
    obs: Observations,
    now: float,
    state: DeciderState,
    active: bool,
    prewarming: bool,
    rec: int,
    why: str,
    idle_for: float,
) -> Decision:
    """No replica exists: activate, pre-warm, or stay at zero."""
    window = spec.scale_down_stabilization
    if not spec.scales_to_zero:
        state = replace(state, recommendations=_push((), now, rec, window))
        return Decision(rec, f"scale up 0 -> {rec}: minReplicas {spec.min_replicas}", state)
    if active:
        reason = (
            f"activate 0 -> {rec}: backlog {obs.backlog} + in flight {obs.in_flight}"
            f" > activation threshold {spec.activation_threshold:g}; needs {rec} = ceil({why})"
        )
        return Decision(rec, reason, replace(state, recommendations=_push((), now, rec, window)))
    assert state.plan is not None
    if prewarming:
        return Decision(1, _prewarm_reason("pre-warm 0 -> 1", idle_for, state.plan), state)
    if obs.work > 0:
        reason = (
            f"hold at zero: backlog {obs.backlog} + in flight {obs.in_flight}"
            f" <= activation threshold {spec.activation_threshold:g}"
        )
    else:
        reason = "hold at zero: no events"
    return Decision(0, reason, replace(state, recommendations=()))


def _running(
    spec: ScalingSpec,
    obs: Observations,
    now: float,
    state: DeciderState,
    active: bool,
    prewarming: bool,
    why: str,
    idle_for: float,
    need: float,
    floor: int,
) -> Decision:
    """Replicas exist: scale to zero after the keep-alive, else size and stabilise."""
    plan = state.plan
    assert plan is not None
    current = obs.replicas
    last_active = state.last_active
    inactive_for = now - last_active if last_active is not None else math.inf
    if spec.scales_to_zero and not active and not prewarming and inactive_for >= plan.keep_alive:
        reason = (
            f"scale to zero: idle {_secs(inactive_for)} >= keep-alive "
            f"{_secs(plan.keep_alive)} ({plan.basis})"
        )
        if obs.work > 0:
            reason += f"; backlog {obs.work} <= activation threshold {spec.activation_threshold:g}"
        return Decision(0, reason, replace(state, recommendations=()))
    window = spec.scale_down_stabilization
    rec = _clamp(spec, math.ceil(need - _EPS))
    if prewarming and max(rec, floor) <= 1 and current <= 1:
        history = _push(state.recommendations, now, 1, window)
        reason = _prewarm_reason(f"hold {current}", idle_for, plan)
        return Decision(1, reason, replace(state, recommendations=history))

    starting = f" ({obs.starting} starting counted)" if obs.starting else ""
    up = max(rec, floor)
    if up > current:
        # A scale-up holds for the window, whatever caused it (else a replica started
        # for a waiting event would go at the next tick).
        history = _push(state.recommendations, now, up, window)
        state = replace(state, recommendations=history)
        reason = f"scale up {current} -> {up}: needs {up} = ceil({why}){starting}"
        return Decision(up, reason, state)
    # Hysteresis: going down to m needs the load to fit m with a margin, so a load
    # near a replica boundary (a rate just under one replica's capacity) does not flap.
    # The margin grows with the square root of the count, as the rate's Poisson noise
    # does: a whole replica's worth at 1 would never scale in, a fixed share at 50
    # would waste many.
    margin = spec.scale_down_hysteresis * math.sqrt(max(need, 1.0))
    with_margin = _clamp(spec, math.ceil(need + margin - _EPS))
    if rec < current <= with_margin:
        history = _push(state.recommendations, now, current, window)
        state = replace(state, recommendations=history)
        reason = (
            f"hold {current}: needs {rec} = ceil({why}), but with the hysteresis margin"
            f" {need:.2f} + {margin:.2f} does not fit {current - 1}"
        )
        return Decision(current, reason, state)
    rec = max(rec, min(with_margin, current))
    history = _push(state.recommendations, now, rec, window)
    state = replace(state, recommendations=history)
    if max(rec, floor) == current:
        return Decision(current, f"hold {current}: needs {current} = ceil({why}){starting}", state)
    window_max = history[0][1]
    desired = max(min(current, window_max), floor)
    if desired < current:
        held = f"; in flight holds {floor}" if floor > window_max else ""
        reason = (
            f"scale down {current} -> {desired}: max recommendation {window_max} in last "
            f"{window:g} s{held} (now needs {max(rec, floor)} = ceil({why}))"
        )
    else:
        reason = (
            f"hold {current}: within stabilisation window (max recommendation {window_max} "
            f"in last {window:g} s; now needs {max(rec, floor)})"
        )
    return Decision(desired, reason, state)


def _secs(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _prewarm_reason(head: str, idle_for: float, plan: KeepAlivePlan) -> str:
    return (
        f"{head}: pre-warm, idle {_secs(idle_for)}; next event expected "
        f"{_secs(plan.prewarm_at or 0.0)}-{_secs(plan.prewarm_until or 0.0)} after idle "
        f"({plan.basis})"
    )
