"""What a destination's ``ref`` points to: the one resolution function that both
``eventing validate`` (through the loader's cross-checks) and ``eventing run`` (through
the composition root) call, so the two always agree on what is accepted.

Kinds a ref may name:

- ``Workload`` (ours): delivery through the workload's router, which also drives its
  autoscaler; a subscriber only (a dead-letter sink must not need scaling to accept).
  A Kubernetes workload needs an address (``service`` or ``url``) to be delivered to.
- ``Broker`` (``eventing.knative.dev/v1``): the event is published into that broker,
  as Knative does when a Trigger's subscriber is a Broker.
- ``Channel``/``InMemoryChannel`` (``messaging.knative.dev/v1``), ``Sequence`` and
  ``Parallel`` (``flows.knative.dev/v1``): published into the internal broker that
  is their address (:mod:`eventing.resources.flows` expands them into brokers and
  triggers), as Knative posts to their address.
- ``Service`` (``v1``) and Knative ``Service`` (``serving.knative.dev/v1``): their
  cluster URL, ``http://NAME.NAMESPACE.svc.<cluster domain>``, when running against
  Kubernetes; on one machine there is no cluster DNS, so the error says what to use.

A ``uri`` beside a ref to a Service is a relative path joined to the resolved URL
(Knative's rule).

A Trigger's subscriber may be a split (:mod:`eventing.resources.split`): each target
resolves with :func:`resolve` as a subscriber, and :func:`split_errors` /
:func:`resolve_split` also refuse two targets that resolve to the same place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin

from eventing.resources.base import KNATIVE_EVENTING, OUR_API, Destination, KReference, Resource
from eventing.resources.split import Subscriber

KNATIVE_SERVING = "serving.knative.dev/v1"
SINKS_V1ALPHA1 = "sinks.knative.dev/v1alpha1"
CORE_V1 = "v1"

Role = Literal["subscriber", "sink", "reply", "deadLetterSink"]
"""Which destination: a Trigger's subscriber, a source's sink, a Sequence's or a
Subscription's reply, a dead-letter sink."""
MESSAGING = "messaging.knative.dev/v1"
FLOWS = "flows.knative.dev/v1"
#: Kinds whose address is an internal broker: (kind, apiVersion).
ADDRESSABLE = frozenset(
    {
        ("Channel", MESSAGING),
        ("InMemoryChannel", MESSAGING),
        ("Sequence", FLOWS),
        ("Parallel", FLOWS),
    }
)


@dataclass(frozen=True)
class Platform:
    """Where the system runs: on one machine, or against a Kubernetes cluster."""

    kubernetes: bool = False
    cluster_domain: str = "cluster.local"
    namespace: str | None = None
    """Controller mode: read only this namespace's resources (default: all)."""
    kubeconfig: str | None = None
    """Credentials for the API server that Kubernetes workloads scale through (default:
    ``$KUBECONFIG``, ``~/.kube/config``, or the pod's service account)."""


@dataclass(frozen=True)
class Resolved:
    kind: Literal["workload", "broker", "url"]
    key: str = ""
    """``namespace/name`` of the Workload or Broker."""
    url: str = ""


class RefError(ValueError):
    """A ref that cannot be resolved: ``field`` is relative to the destination.
    ``missing``: it names a kind we serve but no such resource is loaded (with
    ``eventing validate --partial`` a warning: it may be applied later)."""

    def __init__(self, field: str, value: object, message: str, *, missing: bool = False) -> None:
        self.field = field
        self.value = value
        self.missing = missing
        super().__init__(message)


#: ``lookup(kind, "namespace/name")``: the resource, or None if there is no such one.
Lookup = Callable[[str, str], Resource | None]


def resolve(
    dest: Destination, namespace: str, role: Role, platform: Platform, lookup: Lookup
) -> Resolved:
    """Resolve ``dest`` (of a resource in ``namespace``) or raise :class:`RefError`."""
    if isinstance(dest, Subscriber) and dest.split is not None:
        raise TypeError("a split subscriber has several targets: use resolve_split")
    ref = dest.ref
    if ref is None:
        return Resolved("url", url=dest.uri or "")
    key = f"{ref.namespace or namespace}/{ref.name}"
    kind = (ref.kind, ref.api_version)
    if kind in (("Workload", None), ("Workload", OUR_API)):
        return _workload(ref, key, role, platform, lookup)
    if kind in (("JobSink", None), ("JobSink", SINKS_V1ALPHA1)):
        # loaded as the job Workload it stands for (eventing/resources/jobsink.py)
        return _workload(ref, key, role, platform, lookup)
    if kind in (("Broker", None), ("Broker", KNATIVE_EVENTING)):
        if lookup("Broker", key) is None:
            raise RefError("ref", ref.name, f"no Broker named {ref.name!r}", missing=True)
        return Resolved("broker", key=key)
    if (ref.kind, _served_version(ref.api_version, ref.kind)) in ADDRESSABLE:
        found = lookup(ref.kind, key)
        address = getattr(found, "address_key", None)
        if not isinstance(address, str):
            raise RefError("ref", ref.name, f"no {ref.kind} named {ref.name!r}", missing=True)
        return Resolved("broker", key=address)
    if kind in (("Service", None), ("Service", CORE_V1), ("Service", KNATIVE_SERVING)):
        what = "Knative Service" if ref.api_version == KNATIVE_SERVING else "Service (v1)"
        if not platform.kubernetes:
            raise RefError(
                "ref.kind",
                ref.kind,
                f"a ref to a {what} cannot be resolved on one machine (there is no cluster "
                "DNS): give a uri (http://...) or refer to a Workload; against Kubernetes "
                "(eventing run --kubernetes) it resolves to its cluster URL",
            )
        base = f"http://{ref.name}.{ref.namespace or namespace}.svc.{platform.cluster_domain}/"
        return Resolved("url", url=urljoin(base, dest.uri.lstrip("/")) if dest.uri else base)
    raise RefError(
        "ref.kind",
        f"{ref.api_version or '?'}/{ref.kind}",
        "a ref may name a Workload, a JobSink (sinks.knative.dev/v1alpha1), a Broker "
        "(eventing.knative.dev/v1), a Channel or "
        "InMemoryChannel (messaging.knative.dev/v1), a Sequence or Parallel "
        "(flows.knative.dev/v1), a Service (v1) or a Knative Service "
        "(serving.knative.dev/v1); or give a uri",
    )


def _served_version(api_version: str | None, kind: str) -> str | None:
    """A ref names a resource, not a version: ``flows.knative.dev/v1beta1`` (older
    Knative docs) names the same Sequence as ``v1``, so any version of the kind's group
    resolves, and so does a ref without one."""
    served = next((api for k, api in ADDRESSABLE if k == kind), None)
    if served is None or api_version is None:
        return served
    return served if api_version.split("/")[0] == served.split("/")[0] else api_version


def _workload(
    ref: KReference, key: str, role: Role, platform: Platform, lookup: Lookup
) -> Resolved:
    if role == "deadLetterSink":
        raise RefError(
            "ref.kind",
            ref.kind,
            "a Workload can only be a Trigger's subscriber, a source's sink or a reply, "
            "not a dead-letter sink (it must accept without scaling first): use dlq:, a "
            "Broker or a uri",
        )
    workload = lookup("Workload", key)
    if workload is None:
        raise RefError("ref", ref.name, f"no Workload named {ref.name!r}", missing=True)
    spec = getattr(workload, "spec", None)
    if (
        spec is not None
        and getattr(spec, "scale_target_ref", None) is not None
        and spec.delivery_url(workload.namespace, platform.cluster_domain) is None
    ):
        raise RefError(
            "ref",
            ref.name,
            f"Workload {ref.name!r} scales a Kubernetes resource but names no address to "
            "deliver to: give it spec.service or spec.url",
        )
    if (
        spec is not None
        and getattr(spec, "job_template", None) is not None
        and not platform.kubernetes
    ):
        instead = (
            "or give it a command to run each job as a local process"
            if ref.kind == "Workload"
            else "or use a Workload with jobs and a command to run each job locally"
        )
        raise RefError(
            "ref",
            ref.name,
            f"{ref.kind} {ref.name!r} runs a Kubernetes Job per event: run with "
            f"--kubernetes, {instead}",
        )
    return Resolved("workload", key=key)


def split_errors(
    subscriber: Subscriber, namespace: str, platform: Platform, lookup: Lookup
) -> tuple[list[tuple[int, Resolved]], list[tuple[int, RefError]]]:
    """Each target of a Trigger's ``subscriber`` resolved as a subscriber (a plain
    subscriber is one target): the (index, resolved) that resolved and the (index,
    error) that did not, every one of them (``eventing validate`` reports all). A
    target that resolves to the same place as an earlier one is an error: it would
    make the split say two things about one destination. Error fields are relative to
    the subscriber (``split[1].ref``)."""
    resolved: list[tuple[int, Resolved]] = []
    errors: list[tuple[int, RefError]] = []
    first: dict[Resolved, int] = {}
    is_split = subscriber.split is not None
    for index, target in enumerate(subscriber.targets):
        where = f"split[{index}]" if is_split else ""
        try:
            found = resolve(target, namespace, "subscriber", platform, lookup)
        except RefError as exc:
            field = f"{where}.{exc.field}" if where else exc.field
            errors.append((index, RefError(field, exc.value, str(exc), missing=exc.missing)))
            continue
        earlier = first.setdefault(found, index)
        if earlier != index:
            errors.append(
                (
                    index,
                    RefError(
                        where,
                        describe(found),
                        f"resolves to the same target as split[{earlier}]; each target of a "
                        "split must be a different destination",
                    ),
                )
            )
            continue
        resolved.append((index, found))
    return resolved, errors


def resolve_split(
    subscriber: Subscriber, namespace: str, platform: Platform, lookup: Lookup
) -> list[tuple[int, Resolved]]:
    """(percent, resolved) per target of ``subscriber``, in manifest order, or raise
    the first :class:`RefError` of :func:`split_errors` (``eventing run``)."""
    resolved, errors = split_errors(subscriber, namespace, platform, lookup)
    if errors:
        raise errors[0][1]
    targets = subscriber.targets
    return [(targets[index].percent, found) for index, found in resolved]


def describe(target: Resolved) -> str:
    """A resolved target as people read it: ``workload:ns/name``, ``broker:ns/name``,
    or the URL."""
    return target.url if target.kind == "url" else f"{target.kind}:{target.key}"
