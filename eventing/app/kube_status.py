"""Which resources get their status written back in controller mode, and what each
says (see :mod:`eventing.kube.status`): Brokers (Ready, their ingress address),
Triggers (Ready, the subscriber), Workloads (Ready unless the actuator reports an
error, with the error or the last decision as message, and replica counts), and every
object that did not load (Ready=False, reason Invalid, ``validate``'s message)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from eventing.kube.api import KubeApi
from eventing.kube.feed import ClusterResources, Rejected
from eventing.kube.status import Health, StatusWriter, Tracked
from eventing.resources.base import Resource

if TYPE_CHECKING:
    from eventing.app.runtime import Running


def status_writer(running: Running, kubeconfig: str | None) -> StatusWriter:
    items = [
        Tracked(r.api_version, r.kind, r.namespace, r.name, r.metadata.generation, health)
        for r in running.system.resources.resources
        if r.metadata.uid is not None  # an object of the cluster (not derived here)
        and (health := _health(running, r)) is not None
    ]
    resources = running.system.resources
    if isinstance(resources, ClusterResources):
        items.extend(_rejected(r) for r in resources.rejected)
    return StatusWriter(lambda: KubeApi.connect(kubeconfig), items)


def _rejected(rejected: Rejected) -> Tracked:
    """An object that did not load: Ready=False with ``validate``'s message."""
    health = Health(False, "Invalid", "; ".join(rejected.messages))
    return Tracked(
        rejected.api_version,
        rejected.kind,
        rejected.namespace,
        rejected.name,
        rejected.generation,
        lambda: health,
    )


def _health(running: Running, resource: Resource) -> Callable[[], Health] | None:
    system, key = running.system, resource.key
    if resource.kind == "Broker" and key in system.brokers:
        url = f"{running.ingress_url}/{key}"
        return lambda: Health(True, "Ready", extra={"address": {"url": url}})
    if resource.kind == "Trigger" and key in system.triggers:
        target = system.triggers[key].sink.target
        return lambda: Health(True, "Ready", extra={"subscriberUri": target})
    if resource.kind == "Workload" and system.workloads and key in system.workloads.items:
        workload = system.workloads.items[key]

        def health() -> Health:
            actuator, decision = workload.actuator, workload.scaler.last
            extra = {"replicas": actuator.desired, "readyReplicas": actuator.count("ready")}
            if actuator.error is not None:
                return Health(False, "ScaleTargetError", actuator.error, extra)
            return Health(True, "Ready", decision.reason if decision else "", extra)

        return health
    return None
