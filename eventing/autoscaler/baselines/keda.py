"""KEDA ScaledObject with defaults, composed with the HPA it creates (reference §1, §7.1).

Two loops on their own clocks, as in a cluster:

- the KEDA operator polls the scaler every ``pollingInterval`` (30 s) and runs
  ``RequestScale`` (``pkg/scaling/executor/scale_scaledobjects.go``): 0 -> 1 when the
  trigger is active, ``lastActiveTime`` bookkeeping while active, and straight to zero
  from any N once inactive and ``lastActiveTime + cooldownPeriod (300 s) < now``;
- the HPA syncs every 15 s (:mod:`eventing.autoscaler.baselines.hpa`), reading the
  metric live (``useCachedMetrics: false``), and owns 1 <-> N.

Each run draws the two loops' phase offsets from its seed, so polls are not aligned
with the trace. The metric is the RabbitMQ scaler's default: ``QueueLength`` mode over
the management API, i.e. ``messages`` = ready + unacknowledged = our backlog plus
in-flight, with target value 20 (``defaultRabbitMQQueueLength``) and activation value 0.
The target is a parameter (Kafka's ``lagThreshold`` default would be 10). KEDA has no
push path for RabbitMQ, so arrivals are invisible until the next poll or sync.
Scale-in victims are chosen by the ReplicaSet and drain for up to the pod's
``terminationGracePeriodSeconds`` (30 s).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from eventing.autoscaler.baselines.hpa import SYNC_PERIOD, LegacyHpa
from eventing.autoscaler.policy import Dispatch, ScaleIn, SimView

POLLING_INTERVAL = 30.0
COOLDOWN_PERIOD = 300.0
INITIAL_COOLDOWN_PERIOD = 0.0
DEFAULT_MAX_REPLICAS = 100
RABBITMQ_QUEUE_LENGTH = 20.0
TERMINATION_GRACE = 30.0


@dataclass
class KedaOperator:
    """``RequestScale`` for a ScaledObject without idleReplicaCount, fallback or pause."""

    min_replica_count: int = 0
    cooldown_period: float = COOLDOWN_PERIOD
    initial_cooldown_period: float = INITIAL_COOLDOWN_PERIOD
    creation_time: float = 0.0
    last_active_time: float | None = None

    def request_scale(self, now: float, is_active: bool, current: int) -> int:
        """One poll's effect on the replica count (returns ``current`` if unchanged)."""
        if is_active:
            if current == 0:  # scaleFromZeroOrIdle
                self.last_active_time = now
                return self.min_replica_count if self.min_replica_count > 0 else 1
            self.last_active_time = now  # 1..N: the HPA owns the count
            return current
        if current > 0 and self.min_replica_count == 0:  # scaleToZeroOrIdle
            never_active = self.last_active_time is None
            if (never_active and self.creation_time + self.initial_cooldown_period < now) or (
                self.last_active_time is not None
                and self.last_active_time + self.cooldown_period < now
            ):
                return self.min_replica_count  # from any N, in one step
            return current  # condition "ScalerCooldown"
        if current < self.min_replica_count:
            return self.min_replica_count
        return current


class KedaPolicy:
    """KEDA operator (30 s polls) + legacy HPA (15 s syncs) as one simulated policy."""

    dispatch: Dispatch = "spread"
    scale_in: ScaleIn = "replicaset"

    def __init__(
        self,
        *,
        target: float = RABBITMQ_QUEUE_LENGTH,
        activation_value: float = 0.0,
        min_replica_count: int = 0,
        max_replica_count: int = DEFAULT_MAX_REPLICAS,
        polling_interval: float = POLLING_INTERVAL,
        cooldown_period: float = COOLDOWN_PERIOD,
        termination_grace: float = TERMINATION_GRACE,
    ) -> None:
        self.name = "keda"
        self.termination_grace = termination_grace
        self.activation_value = activation_value
        self.polling_interval = polling_interval
        self.operator = KedaOperator(
            min_replica_count=min_replica_count, cooldown_period=cooldown_period
        )
        self.hpa = LegacyHpa(
            min_replicas=max(min_replica_count, 1), max_replicas=max_replica_count, target=target
        )
        self._next_poll = 0.0
        self._next_sync = 0.0

    def start(self, now: float, rng: random.Random) -> None:
        self.operator.creation_time = now
        self._next_poll = now + rng.uniform(0.0, self.polling_interval)
        self._next_sync = now + rng.uniform(0.0, SYNC_PERIOD)

    def next_wakeup(self) -> float:
        return min(self._next_poll, self._next_sync)

    @staticmethod
    def queue_depth(view: SimView) -> int:
        """RabbitMQ management ``messages``: ready + unacknowledged."""
        return view.backlog + view.in_flight

    def tick(self, now: float, view: SimView) -> int:
        replicas = view.spec_replicas
        if now >= self._next_poll:
            self._next_poll += self.polling_interval
            depth = self.queue_depth(view)
            replicas = self.operator.request_scale(now, depth > self.activation_value, replicas)
        if now >= self._next_sync:
            self._next_sync += SYNC_PERIOD
            status = view.starting + view.ready
            replicas = self.hpa.sync(now, replicas, status, self.queue_depth(view))
        return replicas

    def on_arrival(self, now: float, view: SimView) -> int | None:
        return None  # no push path for queue scalers

    def on_completion(self, now: float, service_time: float, view: SimView) -> None:
        return None

    def on_ready(self, now: float, startup_time: float, view: SimView) -> None:
        return None
