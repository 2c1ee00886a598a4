"""Runs traces x policies for one profile and seed, with every policy at its defaults.

Why one place: which configuration each system is compared in is the claim, so it is
written once. Ours runs with ``ScalingSpec`` defaults except the workload's concurrency;
KEDA with a RabbitMQ ``QueueLength`` trigger at its defaults (target 20, activation 0,
polling 30 s, cooldown 300 s, max 100); Knative KPA with its defaults and
``containerConcurrency`` = the workload's concurrency. Every policy sees the same
arrivals and the same per-event service times.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import replace

from eventing.autoscaler.baselines.keda import KedaPolicy
from eventing.autoscaler.baselines.kpa import KpaPolicy
from eventing.autoscaler.policy import ScalingPolicy
from eventing.autoscaler.simulate.engine import Simulation
from eventing.autoscaler.simulate.ours import OursPolicy
from eventing.autoscaler.simulate.profiles import PROFILES, Workload
from eventing.autoscaler.simulate.results import RunResult
from eventing.autoscaler.simulate.traces import Trace
from eventing.autoscaler.spec import ScalingSpec

POLICIES: tuple[str, ...] = ("ours", "keda", "kpa")


def make_policy(name: str, workload: Workload) -> ScalingPolicy:
    """A fresh policy object by name, configured as documented above."""
    if name == "ours":
        return OursPolicy(ScalingSpec(concurrency_per_replica=workload.concurrency))
    if name == "keda":
        return KedaPolicy()
    if name == "kpa":
        return KpaPolicy(container_concurrency=workload.concurrency)
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")


def service_times(trace: Trace, workload: Workload, seed: int) -> tuple[float, ...]:
    """The trace's own service times, or draws from the workload, fixed per (trace, seed)."""
    if trace.service_times is not None:
        return trace.service_times
    rng = random.Random(f"service:{trace.rng_key}:{seed}")
    return tuple(workload.service_time(rng) for _ in trace.arrivals)


def run_one(
    trace: Trace,
    policy: ScalingPolicy,
    *,
    profile: str,
    seed: int,
    workload: Workload,
    services: tuple[float, ...] | None = None,
) -> RunResult:
    """Simulate one trace under one (fresh) policy."""
    sim = Simulation(
        trace_name=trace.name,
        rng_key=trace.rng_key,
        arrivals=trace.arrivals,
        service_times=services if services is not None else service_times(trace, workload, seed),
        duration=trace.duration,
        policy=policy,
        profile=PROFILES[profile],
        concurrency=trace.concurrency or workload.concurrency,
        seed=seed,
    )
    return sim.run()


def run_matrix(
    traces: Iterable[Trace],
    policies: Sequence[str],
    *,
    profile: str,
    seed: int,
    workload: Workload | None = None,
) -> list[RunResult]:
    """Every trace under every policy, in order (trace-major)."""
    wl = workload or Workload()
    results: list[RunResult] = []
    for trace in traces:
        services = service_times(trace, wl, seed)
        own = wl if trace.concurrency is None else replace(wl, concurrency=trace.concurrency)
        for name in policies:
            policy = make_policy(name, own)
            results.append(
                run_one(trace, policy, profile=profile, seed=seed, workload=wl, services=services)
            )
    return results
