"""Expansion: resources that are routing, not running code, become internal Brokers
and Triggers, so the runtime needs no delivery code of its own for them.

Why expand instead of teaching the runtime new kinds: a broker already stores,
filters, retries, dead-letters and counts a backlog, on whatever broker class it is;
a Sequence, a Channel or a source whose sink is a URL is only a particular wiring of
brokers and triggers (Knative wires Sequences from Channels and Subscriptions the same
way). Expanding them in the loader keeps one delivery path and one set of guarantees.

- ``Channel``/``InMemoryChannel`` ``c``: an internal broker ``c-kn-channel``.
- ``Subscription`` ``s``: a trigger ``s-kn-subscription`` on its channel's broker to
  its subscriber, replies to its reply (without a subscriber, straight to the reply).
- ``Sequence`` ``q`` with n steps: brokers ``q-kn-sequence-0..n-1``; trigger ``i`` on
  broker ``i`` delivers to step ``i`` with the step's delivery, and its replies go to
  broker ``i+1`` (the last step's to ``spec.reply``, or nowhere).
- ``Parallel`` ``p``: broker ``p-kn-parallel``; per branch ``i`` a trigger
  ``p-kn-parallel-i`` to its subscriber (replies to the branch's reply or else the
  Parallel's); a branch with a filter gets a trigger ``p-kn-parallel-filter-i`` to the
  filter whose replies (the events it lets through) go to a broker
  ``p-kn-parallel-i`` that the branch's trigger reads instead.
- A source whose ``sink`` is not a broker (a URL, ``log:``, a Workload) gets a broker
  ``<name>-<kind>-sink`` it publishes into and a trigger from it to the sink (replies
  dropped, as Knative's sources do); a sink naming anything with a broker address (a
  Sequence, a Channel) is rewritten to that broker.
- A ``reply`` that is not a broker is reached the same way: a broker and a trigger
  named after its owner with ``-kn-reply``.

A Trigger's own replies go back into its broker (Knative); an internal trigger's go to
its ``reply``. Internal resources carry the label :data:`OWNER_LABEL` with the
``Kind/name`` they came from, are reported at that resource's place, and are not
counted by ``validate``. A flow's class annotation (``eventing.knative.dev/broker.class``)
is copied to its internal brokers, and :data:`BROKER_CONFIG_ANNOTATION` becomes their
``spec.config``, so a Sequence can run on the Kafka or RabbitMQ class.
"""

from __future__ import annotations

from typing import Any

from eventing.resources.base import (
    BROKER_CLASS_ANNOTATION,
    KNATIVE_EVENTING,
    Destination,
    KReference,
    Metadata,
    Resource,
)
from eventing.resources.broker import Broker, BrokerSpec
from eventing.resources.delivery import DeliverySpec
from eventing.resources.flowkinds import Channel, InMemoryChannel, Parallel, Sequence, Subscription
from eventing.resources.loaded import OWNER_LABEL, ResourceError, ResourceSet, is_internal, label
from eventing.resources.names import child_name
from eventing.resources.refs import Platform, RefError, resolve
from eventing.resources.split import Subscriber
from eventing.resources.trigger import InternalTrigger, TriggerSpec


def internal_metadata(owner: Resource, name: str) -> Metadata:
    annotations = {}
    broker_class = owner.metadata.annotations.get(BROKER_CLASS_ANNOTATION)
    if broker_class is not None and owner.kind != "Broker":
        annotations[BROKER_CLASS_ANNOTATION] = broker_class
    return Metadata(
        name=name,
        namespace=owner.namespace,
        labels={OWNER_LABEL: f"{owner.kind}/{owner.name}"},
        annotations=annotations,
    )


#: On a Sequence, Parallel or Channel (ours): the ConfigMap its internal brokers' class
#: reads (their ``spec.config``), e.g. ``bootstrap.servers`` for the Kafka class.
BROKER_CONFIG_ANNOTATION = "eventing.local/broker-config"


def internal_broker(owner: Resource, name: str, delivery: DeliverySpec | None = None) -> Broker:
    config_map = owner.metadata.annotations.get(BROKER_CONFIG_ANNOTATION)
    config = None
    if config_map and owner.kind != "Broker":
        config = KReference(api_version="v1", kind="ConfigMap", name=config_map)
    return Broker(
        api_version=KNATIVE_EVENTING,
        kind="Broker",
        metadata=internal_metadata(owner, name),
        spec=BrokerSpec(config=config, delivery=delivery),
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
            subscriber=Subscriber.model_validate(
                subscriber.model_dump(by_alias=True, exclude_none=True)
            ),
            delivery=delivery,
        ),
        reply=reply,
    )


class _Expander:
    def __init__(self, loaded: ResourceSet, platform: Platform) -> None:
        self.loaded = loaded
        self.platform = platform
        self.named = loaded.index()
        self.errors: list[ResourceError] = []

    def add(self, owner: Resource, resource: Resource) -> None:
        """Add an internal resource, reported at its owner's place."""
        where = self.loaded.origins.get(id(owner), ("-", None))
        if (resource.kind, resource.key) in self.named:
            self.errors.append(
                ResourceError(
                    where[0],
                    where[1],
                    label(owner),
                    "metadata.name",
                    owner.name,
                    f"needs an internal {resource.kind} named {resource.name!r}, but one "
                    "with that name is already defined; rename one of them",
                )
            )
            return
        self.loaded.origins[id(resource)] = where
        self.loaded.resources.append(resource)
        self.named[(resource.kind, resource.key)] = resource

    def broker(self, owner: Resource, name: str, delivery: DeliverySpec | None = None) -> str:
        broker = internal_broker(owner, name, delivery)
        self.add(owner, broker)
        return broker.key

    def resolve(self, dest: Destination, namespace: str, role: Any) -> Any:
        named = self.named
        return resolve(dest, namespace, role, self.platform, lambda k, n: named.get((k, n)))

    def reply(self, owner: Resource, dest: Destination | None, name: str) -> Destination | None:
        """``dest`` as a ref to a broker: itself when it is one, else a broker and a
        trigger to it. An unresolvable one is left as is (the reference checks report
        it on the owner)."""
        if dest is None:
            return None
        try:
            target = self.resolve(dest, owner.namespace, "reply")
        except RefError:
            return dest
        if target.kind == "broker":
            return broker_ref(target.key)
        key = self.broker(owner, name)
        self.add(owner, internal_trigger(owner, name, key, dest))
        return broker_ref(key)

    def channel(self, c: Channel | InMemoryChannel) -> None:
        self.broker(c, c.address_key.split("/", 1)[1], c.spec.delivery)

    def subscription(self, s: Subscription) -> None:
        try:
            target = self.resolve(Destination(ref=s.spec.channel), s.namespace, "subscriber")
        except RefError:
            return  # reported by the reference checks
        name = child_name(s.name, "-kn-subscription")
        reply = self.reply(s, s.spec.reply, child_name(s.name, "-kn-reply"))
        subscriber, reply = (s.spec.subscriber, reply) if s.spec.subscriber else (reply, None)
        if subscriber is None:
            return  # neither subscriber nor reply: refused by the model check
        trigger = internal_trigger(
            s, name, target.key, subscriber, reply=reply, delivery=s.spec.delivery
        )
        self.add(s, trigger)

    def sequence(self, q: Sequence) -> None:
        steps = q.spec.steps
        keys = [self.broker(q, q.step_broker(i)) for i in range(len(steps))]
        last = self.reply(q, q.spec.reply, child_name(q.name, "-kn-reply"))
        for i, step in enumerate(steps):
            reply = broker_ref(keys[i + 1]) if i + 1 < len(steps) else last
            self.add(
                q,
                internal_trigger(
                    q, q.step_broker(i), keys[i], _plain(step), reply=reply, delivery=step.delivery
                ),
            )

    def parallel(self, p: Parallel) -> None:
        ingress = self.broker(p, p.ingress_broker)
        default_reply = self.reply(p, p.spec.reply, child_name(p.name, "-kn-reply"))
        for i, branch in enumerate(p.spec.branches):
            source = ingress
            if branch.filter is not None:
                source = self.broker(p, p.branch_broker(i))
                name = child_name(p.name, f"-kn-parallel-filter-{i}")
                passed = broker_ref(source)
                self.add(p, internal_trigger(p, name, ingress, branch.filter, reply=passed))
            reply = default_reply
            if branch.reply is not None:
                reply = self.reply(p, branch.reply, child_name(p.name, f"-kn-reply-{i}"))
            trigger = internal_trigger(
                p,
                p.branch_broker(i),
                source,
                branch.subscriber,
                reply=reply,
                delivery=branch.delivery,
            )
            self.add(p, trigger)


def _plain(step: Destination) -> Destination:
    """A step as a plain Destination (its delivery goes on the trigger)."""
    return Destination.model_validate(step.model_dump(by_alias=True, exclude={"delivery"}))


def expand(loaded: ResourceSet, platform: Platform) -> list[ResourceError]:
    """Add the internal resources (see the module doc); returns name clashes."""
    ex = _Expander(loaded, platform)
    for r in list(loaded.resources):
        if is_internal(r):
            continue
        if isinstance(r, Channel | InMemoryChannel):
            ex.channel(r)
        elif isinstance(r, Sequence):
            ex.sequence(r)
        elif isinstance(r, Parallel):
            ex.parallel(r)
    for r in list(loaded.resources):
        if isinstance(r, Subscription):
            ex.subscription(r)
    for index, r in enumerate(list(loaded.resources)):
        if not is_internal(r):
            _expand_sink(ex, index, r)
    return ex.errors


def _expand_sink(ex: _Expander, index: int, source: Resource) -> None:
    spec: Any = getattr(source, "spec", None)
    sink = getattr(spec, "sink", None)
    if not isinstance(sink, Destination):
        return
    try:
        target = ex.resolve(sink, source.namespace, "sink")
    except RefError:
        return  # reported by the reference checks
    if target.kind == "broker":
        if sink.ref is not None and sink.ref.kind == "Broker":
            return
        key = target.key
    else:
        name = child_name(source.name, f"-{source.kind.lower()}-sink")
        key = ex.broker(source, name)
        delivery = getattr(spec, "delivery", None)
        ex.add(source, internal_trigger(source, name, key, sink, delivery=delivery))
    rewritten = source.model_copy(
        update={"spec": spec.model_copy(update={"sink": broker_ref(key)})}
    )
    ex.loaded.origins[id(rewritten)] = ex.loaded.origins.get(id(source), ("-", None))
    ex.loaded.resources[index] = rewritten
