"""Wire a Trigger whose subscriber is a split (a canary) into the running system.

Kept apart from :mod:`eventing.app.system` so the trigger wiring there stays one
branch: each target resolves through :func:`eventing.resources.refs.resolve_split`
(the function ``eventing validate`` runs), becomes a :class:`Route` with its own sink,
and a workload target is attached with a :class:`RouteShare`, so its autoscaler sees
its share of the trigger's arrivals and backlog instead of the whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from eventing.broker.base import Subscription
from eventing.delivery.sink import Sink
from eventing.delivery.split import Route, RouteShare, Split, SplitSink
from eventing.errors import ConfigError
from eventing.events import Event
from eventing.resources.base import Destination
from eventing.resources.refs import RefError, resolve_split
from eventing.resources.trigger import Trigger
from sinks.http import HttpSink

if TYPE_CHECKING:
    from eventing.app.system import System
    from eventing.app.workloads import Workloads

Publish = Callable[[Event], Awaitable[None]]


def build_split(
    system: System,
    trig: Trigger,
    subscription: Subscription,
    publish: Publish,
    sink_for: Callable[[Destination], Sink],
) -> tuple[SplitSink, Split]:
    """The routes of ``trig``'s split subscriber; ``sink_for(target)`` makes the sink of a
    target that is not a workload (the composition root's ``resolve_sink``)."""
    named = {(r.kind, r.key): r for r in system.resources.resources}
    try:
        targets = resolve_split(
            trig.spec.subscriber, trig.namespace, system.platform, lambda k, n: named.get((k, n))
        )
    except RefError as exc:
        raise ConfigError(f"{trig.key}: spec.subscriber.{exc.field}: {exc}") from None
    routes: list[Route] = []
    for (percent, target), spec in zip(targets, trig.spec.subscriber.targets, strict=True):
        if target.kind == "workload" and system.workloads is not None:
            share = RouteShare(subscription)
            sink = system.workloads.attach(target.key, share, publish=publish)
            routes.append(Route(sink, percent, workload=target.key, share=share))
        else:
            sink = sink_for(spec)
            routes.append(Route(sink, percent, sink if isinstance(sink, HttpSink) else None))
    split = Split(routes)
    for route in routes:
        if route.share is not None:
            route.share.bind(split, route)
    subscription.listeners.append(split.arrived)
    return SplitSink(split), split


def detach_split(workloads: Workloads | None, subscription: Subscription, split: Split) -> None:
    """Undo what :func:`build_split` attached (the trigger is removed or gets another
    subscriber while running): its targets' autoscalers stop reading their shares."""
    if split.arrived in subscription.listeners:
        subscription.listeners.remove(split.arrived)
    for route in split.routes:
        if workloads is not None and route.share is not None:
            workloads.detach(route.workload, route.share)


def reattach_split(workloads: Workloads | None, subscription: Subscription, split: Split) -> None:
    """Put back what :func:`detach_split` removed (a change that failed to apply)."""
    subscription.listeners.append(split.arrived)
    for route in split.routes:
        if workloads is not None and route.share is not None and route.workload in workloads.items:
            workloads.attach(route.workload, route.share)


def split_families(splits: Iterable[tuple[str, Split]]) -> Iterable[Metric]:
    """Per-target counters of every split trigger (``target`` label), read at scrape
    time: ``eventing_split_deliveries_total{trigger,target,outcome}`` and the events
    routed to each target and not finished, ``eventing_split_routed``."""
    outcomes = CounterMetricFamily(
        "eventing_split_deliveries",
        "Delivery outcomes per target of a split trigger (a canary)",
        labels=["trigger", "target", "outcome"],
    )
    routed = GaugeMetricFamily(
        "eventing_split_routed",
        "Events routed to a target of a split trigger and not finished",
        labels=["trigger", "target"],
    )
    percent = GaugeMetricFamily(
        "eventing_split_percent",
        "The percent of a split trigger's events a target gets",
        labels=["trigger", "target"],
    )
    for trigger, split in splits:
        for r in split.routes:
            outcomes.add_metric([trigger, r.target, "delivered"], r.delivered)
            outcomes.add_metric([trigger, r.target, "failed"], r.failed)
            routed.add_metric([trigger, r.target], r.routed)
            percent.add_metric([trigger, r.target], r.percent)
    yield outcomes
    yield routed
    yield percent


def split_status(split: Split) -> list[dict[str, object]]:
    """The split as the status document shows it: per target, its percent and counts."""
    return [
        {
            "target": r.target,
            "percent": r.percent,
            "delivered": r.delivered,
            "failed": r.failed,
            "routed": r.routed,
        }
        for r in split.routes
    ]
