"""Expansion: resources that are routing, not running code, become internal Brokers
and Triggers, so the runtime needs no delivery code of its own for them.

Why expand instead of teaching the runtime new kinds: a broker already stores,
filters, retries, dead-letters and counts a backlog, on whatever broker class it is;
a Sequence, a Channel or a source whose sink is a URL is only a particular wiring of
brokers and triggers. Expanding them in the loader keeps one delivery path (and one
set of guarantees) and lets them run on any broker class.

What is expanded here:

- every ``Broker`` and ``Workload`` is entered into :class:`Addresses` (what a ``ref``
  may name);
- a source whose ``sink`` is not a broker (a URL, ``log:``, a Workload) gets an
  internal broker ``<name>-<kind>-sink`` that the source publishes into and an
  internal trigger from it to the sink (replies dropped, as Knative's sources do);
  a sink naming anything with a broker address (a Sequence, a Channel) is rewritten
  to that broker.

Internal resources carry the label :data:`OWNER_LABEL` with the ``Kind/name`` they
came from; their errors are reported on that resource.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from eventing.resources.base import KNATIVE_EVENTING, Destination, KReference, Metadata, Resource
from eventing.resources.broker import Broker, BrokerSpec
from eventing.resources.delivery import DeliverySpec
from eventing.resources.loaded import OWNER_LABEL, ResourceSet, is_internal
from eventing.resources.refs import Platform, RefError, resolve
from eventing.resources.trigger import InternalTrigger, TriggerSpec

MAX_NAME: Final = 63


def child_name(parent: str, suffix: str) -> str:
    """``parent`` + ``suffix`` as a DNS label of at most 63 characters (a hash of the
    parent replaces its tail when too long), as Knative names its children."""
    name = f"{parent}{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(parent.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest)
    return f"{parent[:keep]}{digest}{suffix}"


def internal_metadata(owner: Resource, name: str) -> Metadata:
    return Metadata(
        name=name,
        namespace=owner.namespace,
        labels={OWNER_LABEL: f"{owner.kind}/{owner.name}"},
    )


def internal_broker(owner: Resource, name: str, delivery: DeliverySpec | None = None) -> Broker:
    return Broker(
        api_version=KNATIVE_EVENTING,
        kind="Broker",
        metadata=internal_metadata(owner, name),
        spec=BrokerSpec(delivery=delivery),
    )


def broker_ref(key: str) -> Destination:
    namespace, name = key.split("/", 1)
    return Destination(
        ref=KReference(api_version=KNATIVE_EVENTING, kind="Broker", name=name, namespace=namespace)
    )


def internal_trigger(
    owner: Resource,
    name: str,
    broker_key: str,
    subscriber: Destination,
    *,
    reply: Destination | None = None,
    delivery: DeliverySpec | None = None,
) -> InternalTrigger:
    namespace, broker = broker_key.split("/", 1)
    ref = None
    if namespace != owner.namespace:
        ref = KReference(
            api_version=KNATIVE_EVENTING, kind="Broker", name=broker, namespace=namespace
        )
    return InternalTrigger(
        api_version=KNATIVE_EVENTING,
        kind="Trigger",
        metadata=internal_metadata(owner, name),
        spec=TriggerSpec(
            broker=None if ref is not None else broker,
            broker_ref=ref,
            subscriber=subscriber,
            delivery=delivery,
        ),
        reply=reply,
    )


def add(loaded: ResourceSet, owner: Resource, resource: Resource) -> None:
    """Add an internal resource, reported at its owner's place."""
    loaded.origins[id(resource)] = loaded.origins.get(id(owner), ("-", None))
    loaded.resources.append(resource)


def expand(loaded: ResourceSet, platform: Platform) -> None:
    """Add the internal resources (see the module doc)."""
    named = loaded.index()
    for index, r in enumerate(list(loaded.resources)):
        if not is_internal(r):
            _expand_sink(loaded, named, platform, index, r)


def _expand_sink(
    loaded: ResourceSet,
    named: dict[tuple[str, str], Resource],
    platform: Platform,
    index: int,
    source: Resource,
) -> None:
    spec: Any = getattr(source, "spec", None)
    sink = getattr(spec, "sink", None)
    if not isinstance(sink, Destination):
        return
    try:
        target = resolve(sink, source.namespace, "sink", platform, lambda k, n: named.get((k, n)))
    except RefError:
        return  # reported by the reference checks
    if target.kind == "broker":
        if sink.ref is not None and sink.ref.kind == "Broker":
            return
        key = target.key
    else:
        name = child_name(source.name, f"-{source.kind.lower()}-sink")
        key = f"{source.namespace}/{name}"
        add(loaded, source, internal_broker(source, name))
        delivery = getattr(spec, "delivery", None)
        add(loaded, source, internal_trigger(source, name, key, sink, delivery=delivery))
    rewritten = source.model_copy(
        update={"spec": spec.model_copy(update={"sink": broker_ref(key)})}
    )
    loaded.origins[id(rewritten)] = loaded.origins.get(id(source), ("-", None))
    loaded.resources[index] = rewritten
