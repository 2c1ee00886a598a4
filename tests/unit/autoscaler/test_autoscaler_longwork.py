"""Sizing for long work: in-flight work is demand, a burst of long jobs asks for one
replica per job and not more, a waiting job behind busy replicas gets a replica, and a
load just under one replica's capacity does not flap (hysteresis)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from eventing.autoscaler import DeciderState, Observations, ScalingSpec, decide

SPEC = ScalingSpec(concurrency_per_replica=1, keep_alive="fixed", scale_to_zero_after=60.0)
JOB = 1 / 90.0  # service rate of a 90 s job


def test_a_burst_of_long_jobs_asks_for_one_replica_per_job() -> None:
    # 12 jobs of 90 s arrived within 5 s: the surge rate (2.4/s) x 90 s would ask for
    # 240 replicas by Little's law; only 12 can be busy.
    obs = Observations(backlog=11, in_flight=1, arrival_rate=2.4, service_rate=JOB, ready=1)
    d = decide(SPEC, obs, 10.0, DeciderState(last_active=9.0))
    assert d.replicas == 12 + 2  # the 12 jobs, plus 2.4/s x 1 s expected before the next tick
    assert "at most useful" in d.reason
    # With the long-window rate known (the burst is 12 events in 5 minutes' window), the
    # burst's own rate no longer predicts more arrivals: exactly one replica per job.
    steady = Observations(
        backlog=11,
        in_flight=1,
        arrival_rate=2.4,
        steady_arrival_rate=12 / 360,
        service_rate=JOB,
        startup_time=0.3,
        ready=1,
    )
    assert decide(SPEC, steady, 10.0, DeciderState(last_active=9.0)).replicas == 12


def test_running_long_jobs_hold_their_replicas_after_the_rate_fades() -> None:
    obs = Observations(in_flight=12, arrival_rate=0.03, service_rate=JOB, ready=12)
    state = DeciderState(last_active=0.0)
    for now in range(1, 200, 10):
        d = decide(SPEC, obs, float(now), state)
        state = d.state
        assert d.replicas == 12, d.reason


def test_a_job_waiting_behind_busy_replicas_gets_a_replica() -> None:
    obs = Observations(backlog=1, in_flight=3, arrival_rate=0.01, service_rate=JOB, ready=3)
    d = decide(SPEC, obs, 10.0, DeciderState(last_active=9.0))
    assert d.replicas == 4
    assert "for the backlog" in d.reason


def test_hysteresis_holds_near_one_replicas_capacity() -> None:
    spec = ScalingSpec(concurrency_per_replica=1, target_utilization=0.9, min_replicas=1)
    # 2 replicas; the load needs 0.9-1.0 replica: stays at 2 rather than flapping.
    state = DeciderState(last_active=0.0)
    for now, rate in enumerate([0.45, 0.42, 0.44, 0.41, 0.43] * 20, start=1):
        obs = Observations(in_flight=1, arrival_rate=rate, service_rate=0.478, ready=2)
        d = decide(spec, obs, float(now), state)
        state = d.state
        assert d.replicas == 2, d.reason
    assert "hysteresis" in d.reason
    # Well under: it does go down (after the stabilisation window).
    for now in range(101, 200):
        obs = Observations(in_flight=0, arrival_rate=0.2, service_rate=0.478, ready=2)
        d = decide(spec, obs, float(now), state)
        state = d.state
    assert d.replicas == 1


@given(
    backlog=st.integers(0, 500),
    in_flight=st.integers(0, 500),
    rate=st.floats(0, 1000, allow_nan=False),
    service=st.floats(0.01, 3600, allow_nan=False) | st.none(),
    ready=st.integers(1, 200),
    concurrency=st.integers(1, 16),
)
def test_work_in_flight_is_never_asked_to_go(
    backlog: int,
    in_flight: int,
    rate: float,
    service: float | None,
    ready: int,
    concurrency: int,
) -> None:
    spec = ScalingSpec(concurrency_per_replica=concurrency, max_replicas=1000)
    obs = Observations(
        backlog=backlog,
        in_flight=in_flight,
        arrival_rate=rate,
        service_rate=None if service is None else concurrency / service,
        ready=ready,
    )
    d = decide(spec, obs, 100.0, DeciderState(last_active=100.0))
    assert d.replicas >= min(math.ceil(in_flight / concurrency), spec.max_replicas)
