"""Build the running system from loaded resources: stores, brokers, triggers with
their filters, sinks and dispatchers, and the sources.

This is the composition root's wiring: the one place that knows every concrete
class (SQLite store, HTTP sink, trigger filters, source adapters) and hands them to
the core through its protocols.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import aiohttp
from prometheus_client.core import CounterMetricFamily, Metric

from eventing.app.aging import AgingSubscription
from eventing.app.broker_classes import broker_classes
from eventing.app.canary import build_split, split_families
from eventing.app.dedup_config import SourceDedup, configure_broker
from eventing.app.emitter import SourceEmitter
from eventing.app.workloads import Workloads, external_metrics
from eventing.broker.base import Broker, DeadLetterQueue, Subscription
from eventing.broker.registry import BrokerClasses
from eventing.broker.sqlite_store import SqliteSettings
from eventing.broker.stamps import now_rfc3339, stamp
from eventing.delivery.dispatcher import DeadLetterTarget, Dispatcher
from eventing.delivery.policy import RetryPolicy
from eventing.delivery.sink import Sink
from eventing.delivery.split import Split
from eventing.errors import ConfigError
from eventing.events import ARRIVAL_TIME, Event
from eventing.metrics import Metrics, histogram_family
from eventing.resources.base import Destination
from eventing.resources.broker import Broker as BrokerResource
from eventing.resources.configmap import ConfigMap
from eventing.resources.delivery import merge
from eventing.resources.loader import ResourceSet
from eventing.resources.refs import Platform, RefError, Role, resolve
from eventing.resources.trigger import InternalTrigger, Trigger
from eventing.resources.workload import Workload
from eventing.sourcing import Emit
from eventing.tls import ClientTls
from eventing.workloads.decisionlog import DEFAULT_MAX_BYTES
from sinks.broker import BrokerSink
from sinks.http import HttpSink, new_session
from sinks.httpclient import Pool
from sinks.log import LogSink
from triggers.materialize import exact_attributes, materialize

logger = logging.getLogger(__name__)

#: Knative's Kafka trigger annotation: ``ordered`` or ``unordered`` (the default).
KAFKA_ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"

#: Extensions the dispatcher adds to dead letters; replay removes them again.
ERROR_EXTENSIONS = (
    "knativeerrordest",
    "knativeerrorcode",
    "knativeerrordata",
    "eventingattempts",
    "eventingtrigger",
)


@dataclass
class StoreSettings:
    data_dir: Path = Path(".eventing")
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    max_events: int = 1_000_000
    max_bytes: int = 1024 * 1024 * 1024
    platform: Platform = field(default_factory=Platform)
    """Where refs resolve: one machine, or against Kubernetes (cluster URLs)."""
    delivery_tls: ClientTls | None = None
    """CA bundle and client certificate for ``https://`` subscribers (None: the
    system's CAs, no client certificate)."""
    decisions_max_bytes: int = DEFAULT_MAX_BYTES
    """Size of ``decisions.jsonl`` before it is rotated to ``decisions.jsonl.1``."""

    def sqlite(self) -> SqliteSettings:
        return SqliteSettings(
            self.data_dir / "events.db", self.synchronous, self.max_events, self.max_bytes
        )


@dataclass
class TriggerRuntime:
    resource: Trigger
    broker: Broker
    subscription: Subscription
    dispatcher: Dispatcher
    sink: Sink

    @property
    def key(self) -> str:
        return self.resource.key

    @property
    def split_trigger(self) -> bool:
        """Its subscriber is a split (a canary): per-target counts in status and metrics."""
        return self.resource.spec.subscriber.split is not None


@dataclass
class System:
    metrics: Metrics
    brokers: dict[str, Broker] = field(default_factory=dict)
    opened: list[Broker] = field(default_factory=list)
    triggers: dict[str, TriggerRuntime] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None
    pool: Pool = field(default_factory=Pool)
    workloads: Workloads | None = None
    on_publish: Callable[[str, Sequence[Event]], None] | None = None
    """Told of every event a source or a reply stored (feeds ``eventing tail``)."""
    platform: Platform = field(default_factory=Platform)
    resources: ResourceSet = field(default_factory=ResourceSet)

    def emitter(self, broker_key: str, dedup: SourceDedup | None = None) -> Emit:
        """``emit`` for sources: stamp, mark for deduplication as the source's
        settings say (``None``: never), and publish into ``broker_key``."""
        return SourceEmitter(
            self.brokers[broker_key], broker_key, dedup or SourceDedup(""), lambda: self.on_publish
        )

    async def replay(self, trigger_key: str, event: Event) -> None:
        """Put a dead letter back into its trigger's backlog (that trigger only)."""
        runtime = self.triggers.get(trigger_key)
        if runtime is None:
            raise ConfigError(f"trigger {trigger_key!r} does not exist any more")
        fresh = Event(
            {k: v for k, v in event.attributes.items() if k not in ERROR_EXTENSIONS}, event.data
        )
        fresh.attributes[ARRIVAL_TIME] = now_rfc3339()  # it arrives (again) now
        await runtime.broker.replay(trigger_key, fresh)

    def dead_letter_queues(self) -> list[DeadLetterQueue]:
        """Every broker's ``dlq:`` store, each once (brokers may share one)."""
        queues: dict[int, DeadLetterQueue] = {}
        for broker in self.brokers.values():
            if broker.dead_letters is not None:
                queues.setdefault(id(broker.dead_letters), broker.dead_letters)
        return list(queues.values())

    async def close(self) -> None:
        for runtime in self.triggers.values():
            await runtime.sink.close()
        if self.workloads is not None:
            await self.workloads.close()
        while self.opened:
            await self.opened.pop().close()
        self.pool.close()
        if self.session is not None:
            await self.session.close()


async def build_system(
    resources: ResourceSet,
    settings: StoreSettings,
    metrics: Metrics,
    classes: BrokerClasses | None = None,
) -> System:
    system = System(metrics)
    system.platform = settings.platform
    system.resources = resources
    system.session = new_session(tls=settings.delivery_tls)
    if classes is None:
        classes = broker_classes(settings.sqlite(), process_id="local")
    try:
        await _build(system, resources, settings, metrics, classes)
    except BaseException:
        await system.close()  # a failed start leaves no open store or session behind
        raise
    return system


async def _build(
    system: System,
    resources: ResourceSet,
    settings: StoreSettings,
    metrics: Metrics,
    classes: BrokerClasses,
) -> None:
    trigger_models: list[Trigger] = resources.of(Trigger)
    broker_models: list[BrokerResource] = resources.of(BrokerResource)
    config_maps = {c.key: c for c in resources.of(ConfigMap)}
    for model in broker_models:
        broker = classes.build(model, _config_of(model, config_maps))
        configure_broker(broker, model)
        system.brokers[model.key] = broker
    brokers_by_key = {m.key: m for m in broker_models}
    system.workloads = Workloads(
        metrics,
        settings.data_dir,
        system.pool,
        kubeconfig=settings.platform.kubeconfig,
        decisions_max_bytes=settings.decisions_max_bytes,
    )
    for workload in resources.of(Workload):
        system.workloads.add(workload, external_metrics(workload))
    for trig in trigger_models:
        system.triggers[trig.key] = _trigger(
            system, trig, system.brokers[trig.broker_key], brokers_by_key[trig.broker_key]
        )
    for broker in system.brokers.values():  # every trigger subscribed: now connect
        await broker.open()
        system.opened.append(broker)
    _register_gauges(system)


def _config_of(model: BrokerResource, config_maps: dict[str, ConfigMap]) -> dict[str, str]:
    ref = model.spec.config
    if ref is None:
        return {}
    if ref.kind != "ConfigMap":
        raise ConfigError(
            f"Broker {model.key}: spec.config must name a ConfigMap (got kind {ref.kind})"
        )
    key = f"{ref.namespace or model.namespace}/{ref.name}"
    found = config_maps.get(key)
    if found is None:
        raise ConfigError(f"Broker {model.key}: spec.config names ConfigMap {key}, not loaded")
    return dict(found.data)


def _trigger(
    system: System, trig: Trigger, broker: Broker, broker_model: BrokerResource
) -> TriggerRuntime:
    # Aged: the oldest-event age per trigger, read through the protocol (app/aging.py).
    subscription = AgingSubscription(
        broker.subscribe(trig.key, materialize(trig.spec), exact=exact_attributes(trig.spec))
    )
    parts = delivery_parts(system, trig, broker, broker_model, subscription)
    dispatcher = Dispatcher(
        trigger=trig.key,
        subscription=subscription,
        sink=parts.sink,
        policy=parts.policy,
        dead_letter=parts.dead_letter,
        publish_reply=parts.publish_reply,
        metrics=system.metrics,
        broker=broker.key,
        fast=parts.fast,
        split=parts.split,
    )
    return TriggerRuntime(trig, broker, subscription, dispatcher, parts.sink)


#: The builder of one trigger's runtime, for the reconciler (a trigger added live).
trigger_runtime = _trigger


@dataclass
class DeliveryParts:
    """Everything of a trigger but its subscription: what a changed subscriber or
    delivery spec replaces while the trigger runs (``Dispatcher.retarget``)."""

    sink: Sink
    policy: RetryPolicy
    dead_letter: DeadLetterTarget | None
    publish_reply: Any
    fast: HttpSink | None
    split: Split | None = None
    """The routes of a split subscriber (a canary), else None (one route: ``sink``)."""


def delivery_parts(
    system: System,
    trig: Trigger,
    broker: Broker,
    broker_model: BrokerResource,
    subscription: Subscription,
) -> DeliveryParts:
    """The sink, retry policy, dead-letter target and reply path of ``trig``; a
    Workload subscriber gets ``subscription`` attached (its scaler counts arrivals)."""
    delivery = merge(trig.spec.delivery, broker_model.spec.delivery)
    policy = RetryPolicy.from_spec(delivery)
    order = trig.metadata.annotations.get(KAFKA_ORDER_ANNOTATION)
    explicit = trig.spec.delivery is not None and trig.spec.delivery.ordering is not None
    if order in ("ordered", "unordered") and not explicit:  # spec.delivery.ordering wins
        policy = replace(policy, ordered=order == "ordered")
    split = None
    sink: Sink
    if trig.spec.subscriber.split is not None:  # a canary: eventing/app/canary.py
        sink, split = build_split(
            system,
            trig,
            subscription,
            _replies(system, trig, broker),
            lambda dest: resolve_sink(system, dest, trig.key, trig.namespace),
        )
    else:
        sink = _subscriber_sink(system, trig, subscription, broker)
    dead_letter = None
    if delivery.dead_letter_sink is not None:
        dls = delivery.dead_letter_sink
        dead_letter = DeadLetterTarget(
            None
            if dls.uri == "dlq:"
            else resolve_sink(system, dls, trig.key, trig.namespace, "deadLetterSink")
        )
    return DeliveryParts(
        sink,
        policy,
        dead_letter,
        _replies(system, trig, broker),
        sink if isinstance(sink, HttpSink) else None,
        split,
    )


def _subscriber_sink(
    system: System, trig: Trigger, subscription: Subscription, broker: Broker
) -> Sink:
    """The sink of a trigger with one subscriber (not a split)."""
    target = _resolve(system, trig.spec.subscriber, trig.namespace, "subscriber", trig.key)
    if target.kind == "workload" and system.workloads is not None:
        return system.workloads.attach(
            target.key, subscription, publish=_replies(system, trig, broker)
        )
    return resolve_sink(system, trig.spec.subscriber, trig.key, trig.namespace)


def _replies(system: System, trig: Trigger, broker: Broker) -> Any:
    """A Trigger's replies go back into its broker (Knative); an internal trigger's
    (a Subscription, a flow step) go to its ``reply``, or are dropped without one."""
    if not isinstance(trig, InternalTrigger):
        return broker_reply(broker, system)
    if trig.reply is None:
        return _drop_reply
    target = _resolve(system, trig.reply, trig.namespace, "reply", trig.key)
    if target.kind != "broker":  # the expansion makes every reply a broker
        raise ConfigError(f"{trig.key}: a reply must resolve to a broker")
    return broker_reply(system.brokers[target.key], system)


async def _drop_reply(event: Event) -> None:
    return None


def broker_reply(broker: Broker, system: System | None = None) -> Any:
    async def publish(event: Event) -> None:
        stamp(event, now_rfc3339())
        await broker.publish([event])
        if system is not None and system.on_publish is not None:
            system.on_publish(broker.key, [event])

    return publish


def _resolve(system: System, dest: Destination, namespace: str, role: Role, owner: str) -> Any:
    """:func:`eventing.resources.refs.resolve`, the same function ``validate`` runs."""
    named = {(r.kind, r.key): r for r in system.resources.resources}
    try:
        return resolve(dest, namespace, role, system.platform, lambda k, n: named.get((k, n)))
    except RefError as exc:
        raise ConfigError(f"{owner}: {exc}") from None


def resolve_sink(
    system: System,
    dest: Destination,
    owner: str,
    namespace: str = "default",
    role: Role = "subscriber",
) -> Sink:
    """A sink for a destination that is not a workload: a URL, ``log:``, a Broker."""
    target = _resolve(system, dest, namespace, role, owner)
    if target.kind == "broker":
        broker = system.brokers.get(target.key)
        if broker is None:
            raise ConfigError(f"{owner}: no Broker {target.key}")
        return BrokerSink(target.key, broker_reply(broker, system))
    if target.kind == "workload":
        raise ConfigError(f"{owner}: a Workload can only be a Trigger's subscriber")
    uri = target.url
    if uri == "log:":
        return LogSink(prefix=f"[{owner}] ")
    if uri == "dlq:":
        raise ConfigError(f"{owner}: 'dlq:' is only valid as a deadLetterSink")
    assert system.session is not None
    return HttpSink(uri, system.pool, system.session)


def _delivery_families(system: System) -> Iterable[Metric]:
    """The per-delivery metrics, read from the dispatchers at scrape time."""
    triggers = list(system.triggers.values())
    outcomes = CounterMetricFamily(
        "eventing_deliveries", "Delivery outcomes per trigger", labels=["trigger", "outcome"]
    )
    attempts = CounterMetricFamily(
        "eventing_delivery_attempts", "Delivery attempts by status", labels=["trigger", "status"]
    )
    for t in triggers:
        stats = t.dispatcher.stats
        outcomes.add_metric([t.key, "delivered"], stats.delivered)
        outcomes.add_metric([t.key, "dead_lettered"], stats.dead_lettered)
        for status, n in list(t.dispatcher.attempts.items()):
            attempts.add_metric([t.key, str(status or "error")], n)
    yield outcomes
    yield attempts
    yield histogram_family(
        "eventing_delivery_latency_seconds",
        "Arrival at ingress to successful delivery",
        ["trigger"],
        [([t.key], t.dispatcher.latency) for t in triggers],
    )
    yield histogram_family(
        "eventing_dispatch_duration_seconds",
        "Duration of one delivery attempt",
        ["trigger"],
        [([t.key], t.dispatcher.durations) for t in triggers],
    )


def _register_gauges(system: System) -> None:
    m = system.metrics
    m.add_collector(lambda: _delivery_families(system))
    m.add_collector(
        lambda: split_families(
            (t.key, t.dispatcher.split) for t in system.triggers.values() if t.split_trigger
        )
    )

    def backlog() -> list[tuple[list[str], float]]:
        return [([t.key], float(t.subscription.cached_backlog())) for t in system.triggers.values()]

    def in_flight() -> list[tuple[list[str], float]]:
        return [([t.key], float(t.dispatcher.stats.in_flight)) for t in system.triggers.values()]

    def dlq_depth() -> list[tuple[list[str], float]]:
        out: dict[str, float] = {}
        for queue in system.dead_letter_queues():
            for trig, n in queue.depths().items():
                out[trig] = out.get(trig, 0) + n
        return [([k], v) for k, v in out.items()]

    def stored() -> list[tuple[list[str], float]]:
        out = []
        for b in system.brokers.values():
            events = b.status().stored_events
            if events is not None:
                out.append(([b.key], float(events)))
        return out

    def dropped() -> list[tuple[list[str], float]]:
        return [
            ([b.key, trig, reason], float(n))
            for b in system.brokers.values()
            for (trig, reason), n in b.drops().items()
        ]

    m.add_live("eventing_trigger_backlog", "Matched events not yet delivered", ["trigger"], backlog)
    m.add_live("eventing_trigger_in_flight", "Delivery attempts in flight", ["trigger"], in_flight)
    m.add_live(
        "eventing_dlq_depth",
        "Events kept by the built-in dead-letter store",
        ["trigger"],
        dlq_depth,
    )
    m.add_live("eventing_store_events", "Events held by the broker's store", ["broker"], stored)
    m.add_live(
        "eventing_filter_drops",
        "Events a trigger's filter did not pass, by reason",
        ["broker", "trigger", "reason"],
        dropped,
        counter=True,
    )
