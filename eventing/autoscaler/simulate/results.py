"""What one simulated (trace, policy) run measured, always as cost next to latency.

Definitions (reference §7.2):

- replica-seconds: from each replica's creation to its stop, including startup and
  draining; replicas still up at the end are counted until the end of the run;
- idle replica-seconds: replica-seconds during which the replica served no event
  (startup included: a replica that is not serving is not earning);
- scale events: changes of the desired replica count (each is pod churn, or a Kafka
  consumer-group rebalance);
- cold starts: events that arrived while no ready replica existed;
- queueing delay: from arrival to the start of the service that completed the event;
  percentiles are nearest-rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in [0, 100]) of ascending values; 0 if empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class RunResult:
    """Metrics of one run. Times in seconds."""

    trace: str
    policy: str
    profile: str
    seed: int
    duration: float
    events: int
    served: int
    redelivered: int
    replica_seconds: float
    idle_replica_seconds: float
    scale_events: int
    cold_starts: int
    max_replicas: int
    delay_p50: float
    delay_p95: float
    delay_p99: float
    delay_max: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
