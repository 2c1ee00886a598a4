"""Built-in arrival traces: seeded generators of event arrival times.

Why these: together they exercise every part of a scaler. ``steady`` is the
case where a depth-only target is at its best; ``step`` and ``spike`` test reaction
and scale-down; ``diurnal`` tests tracking a slow trend; ``sparse_periodic`` (a
cron-like producer), ``sparse_poisson`` and ``on_off`` test scale to zero, where the
Azure Functions study (reference §4.1) finds most applications live. Rates are chosen
for the default workload (4 events at once per replica, about 0.57 s each, so one
replica handles about 7 events/s): steady needs about 3 replicas, the spike about 16.
The shapes of long-running work bring their own workload: ``long_jobs`` (builds of
seconds to minutes, one at a time per replica), ``capacity_under`` and
``capacity_over`` (a rate just under and just over one replica's capacity, where a
policy without hysteresis flaps), ``bimodal_gaps`` and ``heavy_tail_sparse`` (idle gaps
a fixed keep-alive fits badly) and ``noisy_diurnal`` (a day with minute-scale noise and
bursts).

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
    concurrency: int | None = None
    """Events one replica serves at once for this trace (``None``: the workload's)."""
    key: str = ""
    """What seeds the trace's random streams (startup times, phases, service times):
    the built-in trace's name, or a digest of a trace file's content, so the same
    events give the same numbers wherever the file lives. Empty means the name."""

    @property
    def rng_key(self) -> str:
        return self.key or self.name


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


def long_jobs(rng: random.Random, duration: float) -> list[float]:
    """Builds: one push a minute on average, and a release burst of 12 every 20 min."""
    out = _poisson(rng, 1 / 60.0, 0.0, duration)
    burst = 300.0
    while burst < duration:
        out.extend(burst + rng.uniform(0.0, 10.0) for _ in range(12))
        burst += 1200.0
    return sorted(t for t in out if t < duration)


def long_job_services(rng: random.Random, n: int) -> list[float]:
    """Seconds to minutes: lognormal, median 45 s, sigma 1 (p5 9 s, p95 4 min), 2-900 s."""
    return [min(900.0, max(2.0, rng.lognormvariate(math.log(45.0), 1.0))) for _ in range(n)]


NEAR_CAPACITY_SERVICE = 2.0
"""Median service time of the near-capacity traces (lognormal, sigma 0.3, concurrency
1): one replica serves 1 / 2.09 = 0.478 events/s."""


def _near_capacity_services(rng: random.Random, n: int) -> list[float]:
    return [rng.lognormvariate(math.log(NEAR_CAPACITY_SERVICE), 0.3) for _ in range(n)]


def _capacity() -> float:
    return 1.0 / (NEAR_CAPACITY_SERVICE * math.exp(0.3**2 / 2))


def capacity_under(rng: random.Random, duration: float) -> list[float]:
    return _poisson(rng, 0.95 * _capacity(), 0.0, duration)


def capacity_over(rng: random.Random, duration: float) -> list[float]:
    return _poisson(rng, 1.05 * _capacity(), 0.0, duration)


def bimodal_gaps(rng: random.Random, duration: float) -> list[float]:
    """Small bursts separated by idle gaps from two clusters: 85 % of 10-40 s, 15 % of
    15-30 min (a chat bot, a CI system between working sessions)."""
    out: list[float] = []
    t = 30.0
    while t < duration:
        n = rng.randint(1, 5)
        out.extend(sorted(t + rng.uniform(0.0, 2.0) for _ in range(n)))
        gap = rng.uniform(10.0, 40.0) if rng.random() < 0.85 else rng.uniform(900.0, 1800.0)
        t = out[-1] + gap
    return [x for x in out if x < duration]


def heavy_tail_sparse(rng: random.Random, duration: float) -> list[float]:
    """Single events with Pareto gaps (alpha 1.1, at least 30 s, at most 2 h): most
    gaps are short, a few are very long, the mean is dominated by the tail."""
    out: list[float] = []
    t = 0.0
    while True:
        t += min(7200.0, 30.0 * rng.paretovariate(1.1))
        if t >= duration:
            return out
        out.append(t)


def noisy_diurnal(rng: random.Random, duration: float) -> list[float]:
    """The diurnal day with the noise of a real one: the rate is multiplied by a
    lognormal factor (sigma 0.5) that changes every minute, and every 15 min on
    average a 20 s burst at three times the rate."""
    minutes = int(duration // 60) + 1
    factor = [rng.lognormvariate(0.0, 0.5) for _ in range(minutes)]
    bursts: list[float] = []
    b = rng.expovariate(1 / 900.0)
    while b < duration:
        bursts.append(b)
        b += rng.expovariate(1 / 900.0)

    def rate(t: float) -> float:
        base = 0.5 + 29.5 * (1 - math.cos(2 * math.pi * t / duration)) / 2
        boost = 3.0 if any(s <= t < s + 20.0 for s in bursts) else 1.0
        return min(peak, base * factor[int(t // 60)] * boost)

    peak = 30.0 * max(factor) * 3.0
    return _thinned(rng, rate, peak, duration)


@dataclass(frozen=True, slots=True)
class TraceKind:
    name: str
    description: str
    generate: Callable[[random.Random, float], list[float]]
    services: Callable[[random.Random, int], list[float]] | None = None
    """Per-event service times of the trace's own workload (``None``: the default
    workload's)."""
    concurrency: int | None = None


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
        TraceKind(
            "long_jobs",
            "builds: Poisson 1/min + 12 at once every 20 min; service 2 s-15 min "
            "(lognormal median 45 s, sigma 1), one at a time per replica",
            long_jobs,
            long_job_services,
            1,
        ),
        TraceKind(
            "capacity_under",
            "Poisson at 95 % of one replica's capacity (service ~2 s, one at a time)",
            capacity_under,
            _near_capacity_services,
            1,
        ),
        TraceKind(
            "capacity_over",
            "Poisson at 105 % of one replica's capacity (service ~2 s, one at a time)",
            capacity_over,
            _near_capacity_services,
            1,
        ),
        TraceKind(
            "bimodal_gaps",
            "bursts of 1-5 events; idle gaps 85 % 10-40 s, 15 % 15-30 min",
            bimodal_gaps,
        ),
        TraceKind(
            "heavy_tail_sparse",
            "single events, Pareto gaps (alpha 1.1, min 30 s, max 2 h)",
            heavy_tail_sparse,
        ),
        TraceKind(
            "noisy_diurnal",
            "diurnal x lognormal noise per minute (sigma 0.5), 20 s bursts at 3x every ~15 min",
            noisy_diurnal,
        ),
    )
}

SPARSE: frozenset[str] = frozenset(
    {"sparse_periodic", "sparse_poisson", "bimodal_gaps", "heavy_tail_sparse"}
)
"""The sparse shapes: where scale to zero and cold starts decide the outcome."""


def generate(name: str, seed: int, duration: float) -> Trace:
    """The built-in trace ``name`` for this seed and duration (seconds)."""
    kind = BUILTIN[name]
    rng = random.Random(f"trace:{name}:{seed}")
    arrivals = tuple(kind.generate(rng, duration))
    services = None
    if kind.services is not None:
        services = tuple(kind.services(random.Random(f"services:{name}:{seed}"), len(arrivals)))
    return Trace(name, kind.description, arrivals, services, duration, kind.concurrency)
