"""Queue-depth autoscaling: how many replicas each workload should run, and why.

Why a pure core: the decision (:func:`decide`) is a function of a :class:`ScalingSpec`,
:class:`Observations`, the time and a carried :class:`DeciderState`, with no I/O, no
clock and no asyncio. The runtime loop calls it every second and when the broker pokes
it on the first event for a workload at zero; the simulator
(:mod:`eventing.autoscaler.simulate`) calls the very same function against faithful
KEDA and Knative baselines (:mod:`eventing.autoscaler.baselines`); tests call it with a
fake clock. :class:`ObservationRecorder` turns raw arrivals, completions and replica
starts into observations the same way for the runtime and the simulator.

See docs/autoscaling.md for the policy, its knobs and the simulator table.
"""

from eventing.autoscaler.decide import DeciderState, Decision, decide, size
from eventing.autoscaler.keepalive import KeepAlivePlan, plan_keep_alive
from eventing.autoscaler.measure import ObservationRecorder
from eventing.autoscaler.observe import MetricSample, MetricSource, Observations, fold_sample
from eventing.autoscaler.spec import KeepAliveMode, ScalingSpec

__all__ = [
    "DeciderState",
    "Decision",
    "KeepAliveMode",
    "KeepAlivePlan",
    "MetricSample",
    "MetricSource",
    "ObservationRecorder",
    "Observations",
    "ScalingSpec",
    "decide",
    "fold_sample",
    "plan_keep_alive",
    "size",
]
