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
    writer = StatusWriter(lambda: KubeApi.connect(kubeconfig), tracked(running))
    if running.reconciler is not None:  # objects come and go: the list follows
        running.reconciler.listeners.append(lambda: refresh(writer, running))
    return writer


def tracked(running: Running) -> list[Tracked]:
    """Every object of the cluster eventing runs, rejected, or failed to apply."""
    items = [
        Tracked(r.api_version, r.kind, r.namespace, r.name, r.metadata.generation, health)
        for r in running.system.resources.resources
        if r.metadata.uid is not None  # an object of the cluster (not derived here)
        and (health := _health(running, r)) is not None
    ]
    reconciler = running.reconciler
    resources = running.system.resources
    if reconciler is not None:
        # An object changed into something invalid (or that failed to apply) keeps its
        # last good version running; its status says why the change is not applied.
        held = {(w.kind, w.namespace, w.name) for r in reconciler.rejected
                if (w := r.identity) is not None}  # fmt: skip
        held |= {(kind, *key.split("/", 1)) for kind, key in reconciler.errors}  # type: ignore[misc]
        items = [i for i in items if (i.kind, i.namespace, i.name) not in held]
        for rejection in reconciler.rejected:
            if (who := rejection.identity) is not None:
                items.append(_invalid(who.api_version, who.kind, who.namespace, who.name,
                                      who.generation, rejection.messages))  # fmt: skip
        for ident, message in reconciler.errors.items():
            model = reconciler.wanted.get(ident)
            if model is not None and model.metadata.uid is not None:
                items.append(Tracked(model.api_version, model.kind, model.namespace, model.name,
                                     model.metadata.generation,
                                     _fixed(Health(False, "Failed", message))))  # fmt: skip
    elif isinstance(resources, ClusterResources):
        items.extend(_rejected(r) for r in resources.rejected)
    return items


def _fixed(health: Health) -> Callable[[], Health]:
    return lambda: health


def refresh(writer: StatusWriter, running: Running) -> None:
    """A new list after a reconcile; what was written before is remembered, so only
    what changed is patched again."""
    before = {(t.kind, t.namespace, t.name): t for t in writer.items}
    items = tracked(running)
    for item in items:
        old = before.get((item.kind, item.namespace, item.name))
        if old is not None:
            item.plural, item.last_body = old.plural, old.last_body
            item.last_ready, item.since = old.last_ready, old.since
    writer.items = items


def _rejected(rejected: Rejected) -> Tracked:
    return _invalid(rejected.api_version, rejected.kind, rejected.namespace, rejected.name,
                    rejected.generation, rejected.messages)  # fmt: skip


def _invalid(
    api_version: str,
    kind: str,
    namespace: str,
    name: str,
    generation: int | None,
    messages: tuple[str, ...],
) -> Tracked:
    """An object that did not load: Ready=False with ``validate``'s message."""
    health = Health(False, "Invalid", "; ".join(messages))
    return Tracked(api_version, kind, namespace, name, generation, lambda: health)


def _health(running: Running, resource: Resource) -> Callable[[], Health] | None:
    system, key = running.system, resource.key
    if resource.kind == "Broker" and key in system.brokers:
        url = f"{running.ingress_url}/{key}"
        return lambda: Health(True, "Ready", extra={"address": {"url": url}})
    if resource.kind == "Trigger" and key in system.triggers:

        def trigger_health() -> Health:  # read each time: a subscriber changes live
            runtime = system.triggers.get(key)
            target = runtime.sink.target if runtime is not None else ""
            return Health(True, "Ready", extra={"subscriberUri": target})

        return trigger_health
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
