"""Every knob of the autoscaling policy, with its default, in one frozen value.

Why a plain dataclass and not the pydantic resource: :func:`eventing.autoscaler.decide`
is a pure function that the runtime, the simulator and the tests all call, so its input
must be cheap to build and free of I/O and YAML concerns. The ``Workload`` resource
(pydantic, camelCase YAML) is mapped onto this class by the resource layer; each field's
docstring names the YAML key we recommend and, where one exists, the KEDA (or Knative)
field a user may already know, so a KEDA ``ScaledObject`` translates field by field.

Units: times in seconds, rates in events per second, counts of events or replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from eventing.errors import ConfigError

KeepAliveMode = Literal["fixed", "adaptive"]


@dataclass(frozen=True, slots=True)
class ScalingSpec:
    """How one workload scales. Defaults are the project's policy (docs/autoscaling.md)."""

    min_replicas: int = 0
    """Replicas kept even when idle. YAML ``minReplicas`` (KEDA ``minReplicaCount``,
    default 0 there too). With 1 or more the workload never scales to zero and the
    activation threshold and keep-alive have no effect, as in KEDA."""

    max_replicas: int = 100
    """Upper bound on replicas. YAML ``maxReplicas`` (KEDA ``maxReplicaCount``, whose
    default is also 100; Knative ``max-scale``)."""

    concurrency_per_replica: int = 1
    """How many events one replica handles at once; the dispatcher never hands a replica
    more. YAML ``concurrencyPerReplica`` (Knative ``containerConcurrency``; for RabbitMQ
    consumers this is the prefetch). Default 1: safe for subscribers not written for
    concurrency."""

    target_utilization: float = 0.9
    """Fraction of the replicas' concurrency slots the rate-based sizing aims to keep busy
    in steady state (Little's law headroom). YAML ``targetUtilization`` (Knative's
    ``container-concurrency-target-percentage``, 0.7 there). In (0, 1]."""

    target_per_replica: float | None = None
    """Optional KEDA-style target: events (waiting + in flight) per replica. YAML
    ``targetPerReplica`` (KEDA's trigger ``value``: RabbitMQ ``queueLength``/``value``,
    Kafka ``lagThreshold``). When set, the replica count is at least
    ``ceil((backlog + in_flight) / target_per_replica)``, exactly what a KEDA user's HPA
    would ask for, and our rate-based sizing may add more. Unset by default: we size on
    rates, which needs no per-workload guess."""

    activation_threshold: float = 0.0
    """The workload is *active* iff ``backlog + in_flight > activation_threshold``
    (strict, KEDA's ``activationValue`` semantics; YAML ``activationThreshold``, KEDA
    ``activationQueueLength``/``activationLagThreshold``/``activationValue``). It governs
    only 0 <-> 1: at zero nothing starts until the workload is active, and an inactive
    workload goes to zero after the keep-alive even if sizing would want more replicas
    (KEDA: "the activation value has more priority than the scaling value")."""

    scale_down_stabilization: float = 30.0
    """Scale-down uses the highest recommendation of the last this-many seconds (HPA's
    stabilisation window; scale-up is never delayed). YAML
    ``stabilizationWindowSeconds`` (KEDA ``advanced.horizontalPodAutoscalerConfig.
    behavior.scaleDown.stabilizationWindowSeconds``, 300 by default there; Knative's
    stable window is 60)."""

    scale_down_hysteresis: float = 0.15
    """Scale down to ``m`` replicas only when ``needed x (1 + this) <= m``: a load near
    a replica boundary (a rate just under one replica's capacity) stays put instead of
    flapping between ``m`` and ``m + 1``. Scale-up is not affected. YAML
    ``scaleDownHysteresis`` (the HPA's 10 % tolerance plays a similar part)."""

    drain_horizon: float = 10.0
    """A backlog is sized to be drained within this many seconds, on top of the replicas
    the arrival rate needs. YAML ``drainHorizonSeconds``. Shorter = more replicas on a
    burst and lower delay."""

    keep_alive: KeepAliveMode = "adaptive"
    """How long an idle workload stays up before going to zero. ``"fixed"``: exactly
    ``scale_to_zero_after`` seconds (KEDA's ``cooldownPeriod`` behaviour, minus its
    polling granularity). ``"adaptive"`` (default): the keep-alive that minimises
    idle replica-seconds + ``cold_start_cost`` x cold starts over this trigger's own
    recent idle gaps (ski-rental optimum, capped at ``keep_alive_max``), with optional
    pre-warming for periodic sources. YAML ``keepAlive: fixed|adaptive``."""

    scale_to_zero_after: float = 60.0
    """Idle seconds before scaling to zero in ``fixed`` mode; in ``adaptive`` mode, the
    value used until the idle-gap history has ``keep_alive_min_samples`` gaps. YAML
    ``cooldownPeriod`` (KEDA's name and meaning: only for N -> 0, never for N -> 1;
    KEDA's default is 300 s)."""

    keep_alive_max: float = 300.0
    """Adaptive keep-alive never exceeds this (KEDA's default cooldown, so adaptive is
    never more wasteful than KEDA's default). YAML ``maxKeepAliveSeconds``."""

    keep_alive_min_samples: int = 3
    """Idle gaps needed before the adaptive keep-alive trusts the history. YAML
    ``keepAliveMinSamples``."""

    cold_start_cost: float = 60.0
    """What one cold start is worth in idle replica-seconds, on top of the measured
    startup time (which is billed anyway). The adaptive keep-alive keeps a replica warm
    across a gap only when that is cheaper than this. Raise it to trade cost for fewer
    cold starts. YAML ``coldStartCostSeconds``."""

    prewarm: bool = True
    """In adaptive mode, when the long idle gaps cluster tightly (cron-like sources),
    scale to zero right after the work and start one replica shortly before the next
    expected arrival, if that is cheaper than the cold start it avoids. YAML
    ``prewarm``."""

    max_drain: float = 3600.0
    """A replica chosen to go while it has events in flight takes no new events and
    keeps working until they are done, for at most this many seconds; only then is it
    stopped and its events redelivered (counted with the reason
    ``max-drain-exceeded``). YAML ``maxDrainSeconds``. Default one hour, generous on
    purpose: a build or a batch job may run for many minutes, and a replica that drains
    costs only itself. Unrelated to ``terminationGracePeriodSeconds``, the time between
    SIGTERM and SIGKILL once the work is done."""

    polling_interval: float | None = None
    """Accepted for KEDA compatibility (YAML ``pollingInterval``) and ignored: the broker
    pokes the scaler on the first event for a workload at zero, and the loop ticks every
    second on metrics it already has, so there is no source to poll. Kept so that a
    translated ScaledObject validates and ``eventing validate`` can warn about it."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.min_replicas < 0:
            problems.append(f"minReplicas must be >= 0, got {self.min_replicas}")
        if self.max_replicas < max(1, self.min_replicas):
            problems.append(
                f"maxReplicas must be >= max(1, minReplicas={self.min_replicas}), "
                f"got {self.max_replicas}"
            )
        if self.concurrency_per_replica < 1:
            problems.append(
                f"concurrencyPerReplica must be >= 1, got {self.concurrency_per_replica}"
            )
        if not 0.0 < self.target_utilization <= 1.0:
            problems.append(f"targetUtilization must be in (0, 1], got {self.target_utilization}")
        if self.target_per_replica is not None and not self.target_per_replica > 0:
            problems.append(f"targetPerReplica must be > 0, got {self.target_per_replica}")
        if self.keep_alive not in ("fixed", "adaptive"):
            problems.append(f"keepAlive must be 'fixed' or 'adaptive', got {self.keep_alive!r}")
        if self.keep_alive_min_samples < 1:
            problems.append(f"keepAliveMinSamples must be >= 1, got {self.keep_alive_min_samples}")
        for yaml_name, value in (
            ("activationThreshold", self.activation_threshold),
            ("stabilizationWindowSeconds", self.scale_down_stabilization),
            ("cooldownPeriod", self.scale_to_zero_after),
            ("maxKeepAliveSeconds", self.keep_alive_max),
            ("coldStartCostSeconds", self.cold_start_cost),
            ("maxDrainSeconds", self.max_drain),
            ("scaleDownHysteresis", self.scale_down_hysteresis),
        ):
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{yaml_name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(self.drain_horizon) and self.drain_horizon > 0):
            problems.append(f"drainHorizonSeconds must be > 0, got {self.drain_horizon}")
        if problems:
            raise ConfigError("invalid scaling spec: " + "; ".join(problems))

    @property
    def scales_to_zero(self) -> bool:
        """Whether this workload may have zero replicas at all."""
        return self.min_replicas == 0
