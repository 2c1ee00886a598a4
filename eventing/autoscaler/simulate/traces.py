"""Built-in arrival traces: seeded generators of event arrival times.

Why these seven: together they exercise every part of a scaler. ``steady`` is the
case where a depth-only target is at its best; ``step`` and ``spike`` test reaction
and scale-down; ``diurnal`` tests tracking a slow trend; ``sparse_periodic`` (a
cron-like producer), ``sparse_poisson`` and ``on_off`` test scale to zero, where the
Azure Functions study (reference §4.1) finds most applications live. Rates are chosen
for the default workload (4 events at once per replica, about 0.57 s each, so one
replica handles about 7 events/s): steady needs about 3 replicas, the spike about 16.

Every generator is deterministic in ``(seed, duration)``; arrivals within a phase are
Poisson unless said otherwise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Trace:
    """Arrival times (sorted, seconds from 0) and, optionally, per-event service times."""

    name: str
    description: str
    arrivals: tuple[float, ...]
    service_times: tuple[float, ...] | None
    duration: float


def _poisson(rng: random.Random, rate: float, start: float, end: float) -> list[float]:
    out: list[float] = []
    t = start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return out
        out.append(t)


def _thinned(
    rng: random.Random, rate: Callable[[float], float], peak: float, end: float
) -> list[float]:
    """Non-homogeneous Poisson arrivals by thinning (Lewis and Shedler)."""
    out: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return out
        if rng.random() * peak < rate(t):
            out.append(t)


def steady(rng: random.Random, duration: float) -> list[float]:
    return _poisson(rng, 20.0, 0.0, duration)


def step(rng: random.Random, duration: float) -> list[float]:
    third = duration / 3
    return (
        _poisson(rng, 4.0, 0.0, third)
        + _poisson(rng, 40.0, third, 2 * third)
        + _poisson(rng, 4.0, 2 * third, duration)
    )


def spike(rng: random.Random, duration: float) -> list[float]:
    start = duration / 2
    burst = _poisson(rng, 200.0, start, min(duration, start + 60.0))
    return sorted(_poisson(rng, 2.0, 0.0, duration) + burst)


def diurnal(rng: random.Random, duration: float) -> list[float]:
    def rate(t: float) -> float:
        return 0.5 + 29.5 * (1 - math.cos(2 * math.pi * t / duration)) / 2

    return _thinned(rng, rate, 30.0, duration)


def sparse_periodic(rng: random.Random, duration: float) -> list[float]:
    out: list[float] = []
    fire = 120.0
    while fire < duration:
        start = fire + rng.uniform(0.0, 1.0)  # cron jitter
        out.extend(sorted(start + rng.uniform(0.0, 5.0) for _ in range(20)))
        fire += 600.0
    return [t for t in out if t < duration]


def sparse_poisson(rng: random.Random, duration: float) -> list[float]:
    return _poisson(rng, 1 / 300.0, 0.0, duration)


def on_off(rng: random.Random, duration: float) -> list[float]:
    out: list[float] = []
    t = 30.0
    while t < duration:
        on = rng.uniform(60.0, 180.0)
        out.extend(_poisson(rng, 25.0, t, min(duration, t + on)))
        t += on + rng.uniform(300.0, 900.0)
    return out


@dataclass(frozen=True, slots=True)
class TraceKind:
    name: str
    description: str
    generate: Callable[[random.Random, float], list[float]]


BUILTIN: dict[str, TraceKind] = {
    k.name: k
    for k in (
        TraceKind("steady", "Poisson 20 events/s", steady),
        TraceKind("step", "Poisson 4/s, then 40/s for the middle third, then 4/s", step),
        TraceKind("spike", "Poisson 2/s with 60 s at 200/s halfway", spike),
        TraceKind("diurnal", "Poisson, rate 0.5 -> 30 -> 0.5 /s over the run (one 'day')", diurnal),
        TraceKind(
            "sparse_periodic",
            "cron-like: every 600 s a burst of 20 events within 5 s (jitter 0-1 s)",
            sparse_periodic,
        ),
        TraceKind("sparse_poisson", "Poisson, one event per 300 s on average", sparse_poisson),
        TraceKind("on_off", "bursts of 60-180 s at 25/s separated by 300-900 s of silence", on_off),
    )
}


def generate(name: str, seed: int, duration: float) -> Trace:
    """The built-in trace ``name`` for this seed and duration (seconds)."""
    kind = BUILTIN[name]
    rng = random.Random(f"trace:{name}:{seed}")
    arrivals = tuple(kind.generate(rng, duration))
    return Trace(name, kind.description, arrivals, None, duration)
