"""Kubernetes HPA as KEDA drives it: External metric, AverageValue, legacy normalisation.

Faithful to reference §2 (``kubernetes/kubernetes`` ``pkg/controller/podautoscaler``
``horizontal.go`` and ``replica_calculator.go``). KEDA leaves
``advanced.horizontalPodAutoscalerConfig.behavior`` nil by default, so the HPA takes its
*legacy* path: a 300 s down-stabilisation over its own recommendation history, a
scale-up limit of ``max(2 x current, 4)`` per sync, no rate limit on scale-down, and a
10 % tolerance dead band. The HPA does nothing while the target is at zero replicas
("ScalingDisabled"): KEDA owns 0 <-> 1.

Pure apart from the recommendation history, which the real controller also keeps in
memory per HPA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SYNC_PERIOD = 15.0
"""``--horizontal-pod-autoscaler-sync-period``."""

TOLERANCE = 0.1
"""``--horizontal-pod-autoscaler-tolerance``."""

DOWNSCALE_STABILIZATION = 300.0
"""``--horizontal-pod-autoscaler-downscale-stabilization`` (5 min)."""

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


def average_value_proposal(
    metric_total: float, target: float, status_replicas: int, tolerance: float = TOLERANCE
) -> int:
    """``GetExternalPerPodMetricReplicas``: replicas for an AverageValue target.

    The usage ratio is ``total / (target x status_replicas)``; inside the tolerance the
    count stays, outside it becomes ``ceil(total / target)``, whatever the current
    count (so current capacity cancels out, reference §1.5).
    """
    if status_replicas == 0:
        # Go: usage / 0 is +Inf (outside tolerance) or NaN for 0/0 (inside).
        return math.ceil(metric_total / target) if metric_total > 0 else 0
    ratio = metric_total / (target * status_replicas)
    if abs(1.0 - ratio) > tolerance:
        return math.ceil(metric_total / target)
    return status_replicas


def scale_up_limit(current: int) -> int:
    """``calculateScaleUpLimit``: ``max(2 x current, 4)``."""
    return int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))


@dataclass
class LegacyHpa:
    """One HPA object with ``behavior: nil`` and a single External AverageValue metric."""

    min_replicas: int
    max_replicas: int
    target: float
    stabilization: float = DOWNSCALE_STABILIZATION
    tolerance: float = TOLERANCE
    recommendations: list[tuple[float, int]] | None = field(default=None)
    """(time, recommendation); ``None`` until the first sync records the initial one."""

    def stabilize(self, now: float, proposal: int) -> int:
        """``stabilizeRecommendation``: max over the window, then record ``proposal``."""
        recs = self.recommendations
        assert recs is not None
        best = proposal
        cutoff = now - self.stabilization
        old_index: int | None = None
        for i, (t, r) in enumerate(recs):
            if t < cutoff:
                old_index = i
            elif r > best:
                best = r
        if old_index is not None:
            recs[old_index] = (now, proposal)
        else:
            recs.append((now, proposal))
        return best

    def normalize(self, now: float, current: int, proposal: int) -> int:
        """``normalizeDesiredReplicas`` (legacy): stabilise, then clamp with the up limit."""
        stabilized = self.stabilize(now, proposal)
        highest = min(self.max_replicas, scale_up_limit(current))
        if stabilized < self.min_replicas:
            return self.min_replicas
        return min(stabilized, highest)

    def sync(self, now: float, spec_replicas: int, status_replicas: int, metric: float) -> int:
        """One ``reconcileAutoscaler``; returns the replica count to set (maybe unchanged)."""
        if self.recommendations is None:
            self.recommendations = [(now, spec_replicas)]  # recordInitialRecommendation
        if spec_replicas == 0 and self.min_replicas != 0:
            return spec_replicas  # ScalingActive=False, ScalingDisabled
        if spec_replicas > self.max_replicas:
            return self.max_replicas
        if spec_replicas < self.min_replicas:
            return self.min_replicas
        proposal = average_value_proposal(metric, self.target, status_replicas, self.tolerance)
        return self.normalize(now, spec_replicas, proposal)
