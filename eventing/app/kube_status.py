"""Which resources get their status written back in controller mode, and what each
says (see :mod:`eventing.kube.status`): Brokers (Ready, their ingress address),
Triggers (Ready, the subscriber's URI; a canary split's primary target's, the whole
split in ``status.annotations``), Workloads (Ready unless the actuator reports an
error, with the error or the last decision as message, and replica counts), and every
object that did not load (Ready=False, reason Invalid, ``validate``'s message)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from eventing.kube.api import KubeApi
from eventing.kube.feed import ClusterResources, Rejected
from eventing.kube.status import Health, StatusWriter, Tracked
from eventing.resources.base import Resource
from sinks.http import redact_url

if TYPE_CHECKING:
    from eventing.app.runtime import Running
    from eventing.app.system import TriggerRuntime


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
            if runtime is None:
                return Health(True, "Ready", extra={"subscriberUri": ""})
            return _trigger_health(running, runtime)

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


#: The ``status.annotations`` key a split trigger's targets go in (Knative's status
#: has this map for "additional status fields"; a CRD with a strict status schema
#: keeps it where it would prune a field of our own).
SPLIT_ANNOTATION = "eventing.local/split"


def _trigger_health(running: Running, runtime: TriggerRuntime) -> Health:
    """A Trigger's ``subscriberUri`` is a URI, as in Knative. A canary split has
    several: the primary target's (the largest percent, the first of equals) is the
    ``subscriberUri``; every target with its percent goes in ``status.annotations``
    (a JSON list) and in the Ready message. A plain subscriber clears the annotation
    (the status is a merge patch: a key left out would keep an old split)."""
    if not runtime.split_trigger:
        return Health(
            True,
            "Ready",
            extra={
                "subscriberUri": subscriber_uri(running, runtime.sink.target),
                "annotations": {SPLIT_ANNOTATION: None},
            },
        )
    routes = runtime.dispatcher.split.routes
    uris = [subscriber_uri(running, r.target) for r in routes]
    primary = max(range(len(routes)), key=lambda i: routes[i].percent)  # first of equals
    targets = [{"uri": u, "percent": r.percent} for u, r in zip(uris, routes, strict=True)]
    message = "split: " + ", ".join(
        f"{r.percent}% to {u}" for u, r in zip(uris, routes, strict=True)
    )
    return Health(
        True,
        "Ready",
        message,
        extra={
            "subscriberUri": uris[primary],
            "annotations": {SPLIT_ANNOTATION: json.dumps(targets, separators=(",", ":"))},
        },
    )


def subscriber_uri(running: Running, target: str) -> str:
    """A sink's target as a URI: a URL as it is (already redacted); a Broker as its
    ingress address (what the Broker's ``status.address.url`` says); a Workload as the
    address its events go to, when it has one (``spec.url`` or ``spec.service``, a
    Kubernetes workload). A local workload's replicas have no stable address: it
    stays ``workload:namespace/name``."""
    kind, _, key = target.partition(":")
    if kind == "broker" and key in running.system.brokers:
        return f"{running.ingress_url}/{key}"
    workloads = running.system.workloads
    if kind == "workload" and workloads is not None and key in workloads.items:
        resource = workloads.items[key].resource
        platform = running.system.platform
        url = resource.spec.delivery_url(resource.namespace, platform.cluster_domain)
        if url is not None:
            return redact_url(url)
    return target
