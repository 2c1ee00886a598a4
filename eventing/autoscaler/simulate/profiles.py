"""The simulated world's distributions: replica startup (per profile) and the workload.

Why explicit: every number in the simulator table depends on them, so they are named,
documented and seeded here rather than scattered through the engine.

Startup profiles:

- ``process``: a local subprocess (our default runtime) until its readiness probe
  passes: lognormal with median 0.3 s and sigma 0.35 (p95 about 0.53 s), the
  "local process 0.1-1 s" of reference §7.1;
- ``pod``: a Kubernetes pod (scheduling, image present, container start, readiness):
  2 s plus a lognormal with median 3 s and sigma 0.6, capped at 15 s (median 5 s, p95
  about 10 s), within the 2-15 s reported in reference §6.

Workload: each replica serves up to ``concurrency`` events at once (default 4); an
event's service time is lognormal with median 0.5 s and sigma 0.5 (mean about 0.57 s)
unless the trace file gives it. Service times are drawn once per trace, so every policy
serves exactly the same events with exactly the same durations.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StartupProfile:
    """How long a replica takes from creation to ready."""

    name: str
    description: str
    sample: Callable[[random.Random], float]


def _process_startup(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(0.3), 0.35)


def _pod_startup(rng: random.Random) -> float:
    return min(15.0, 2.0 + rng.lognormvariate(math.log(3.0), 0.6))


PROFILES: dict[str, StartupProfile] = {
    "process": StartupProfile(
        "process", "local subprocess: lognormal, median 0.3 s, sigma 0.35", _process_startup
    ),
    "pod": StartupProfile(
        "pod", "Kubernetes pod: 2 s + lognormal(median 3 s, sigma 0.6), max 15 s", _pod_startup
    ),
}


@dataclass(frozen=True, slots=True)
class Workload:
    """The subscriber being scaled: its concurrency limit and service-time distribution."""

    concurrency: int = 4
    service_median: float = 0.5
    service_sigma: float = 0.5

    def service_time(self, rng: random.Random) -> float:
        return rng.lognormvariate(math.log(self.service_median), self.service_sigma)

    @property
    def mean_service(self) -> float:
        return self.service_median * math.exp(self.service_sigma**2 / 2)
