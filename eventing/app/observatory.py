"""Wires what operators watch into the running system: the tap on every path into a
broker, the sampler behind the dashboard, and the hooks of :mod:`eventing.ui` (explain,
tail filters and verdicts in :mod:`eventing.app.explain_live`, topology), which need
the filters and CESQL that only the composition root may import.

Events reach a broker three ways, and each is tapped after the broker stored them:
the ingress (through :class:`TappedBroker`, which the ingress and its workers get
instead of the broker), the sources and the replies (through
``System.on_publish``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from eventing.app.aging import AgingSubscription
from eventing.app.explain_live import LiveExplainer
from eventing.app.system import System
from eventing.app.tracing import OtlpExporter
from eventing.autoscaler.decide import Decision
from eventing.broker.base import Publisher
from eventing.events import Event
from eventing.resources.loader import ResourceSet
from eventing.ui.hooks import UiHooks
from eventing.ui.routes import register
from eventing.ui.series import Sampler
from eventing.ui.tap import Tap

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventing.app.runtime import Running
    from eventing.supervise import Supervisor


class TappedBroker:
    """A broker as the ingress sees it (a ``Publisher``): publishing also feeds the tap."""

    def __init__(self, inner: Publisher, tap: Tap) -> None:
        self.inner = inner
        self.tap = tap
        self.key = inner.key

    async def publish(self, events: Sequence[Event]) -> None:
        await self.inner.publish(events)
        self.tap.offer(self.key, events)


class Observatory:
    def __init__(self, system: System, resources: ResourceSet) -> None:
        self.system = system
        self.tap = Tap()
        self.sampler = Sampler(self._sample)
        self.running: Running | None = None
        self._sources = _source_brokers(resources)
        self.live = LiveExplainer(system, self.tap)
        system.on_publish = self.tap.offer
        if system.workloads is not None:
            system.workloads.listeners.append(self._decided)
        self._register_metrics()
        self.hooks = UiHooks(
            tap=self.tap,
            sampler=self.sampler,
            explain=self.live.explain,
            matcher=self.live.matcher,
            verdicts=self.live.verdicts,
            topology=self.topology,
        )

    def _register_metrics(self) -> None:
        metrics = self.system.metrics

        def ages() -> list[tuple[list[str], float]]:
            out = []
            for key, t in self.system.triggers.items():
                age = _oldest_age(t.subscription)
                if age is not None:
                    out.append(([key], age))
            return out

        metrics.add_live(
            "eventing_trigger_oldest_event_age_seconds",
            "Seconds since the oldest event the trigger has not finished arrived",
            ["trigger"],
            ages,
        )
        metrics.add_live(
            "eventing_tail_dropped",
            "Events tail streams did not show because they fell behind",
            [],
            lambda: [([], float(self.tap.dropped))],
            counter=True,
        )

    def start(self, running: Running, supervisor: Supervisor, group: str, otel: str | None) -> None:
        """Once running: the sampler task, and the span exporter when asked for."""
        self.running = running
        supervisor.spawn("ui sampler", self.sampler.run, group=group, restart=True)
        if otel:
            exporter = OtlpExporter(otel)
            self.trace(exporter)
            supervisor.spawn("otel exporter", exporter.run, group=group, restart=True)

    def trace(self, exporter: OtlpExporter) -> None:
        """Report spans for traced events: publishes through the tap, deliveries through
        each trigger's subscription."""
        self.tap.listeners.append(exporter.published)
        for runtime in self.system.triggers.values():
            if isinstance(runtime.subscription, AgingSubscription):
                runtime.subscription.observer = exporter

    def publishers(self) -> dict[str, Publisher]:
        """The brokers for the ingress, tapped."""
        return {k: TappedBroker(b, self.tap) for k, b in self.system.brokers.items()}

    def routes(self) -> Callable[[web.Application], None]:
        return register(self.hooks)

    # --- dashboard -------------------------------------------------------------------

    def topology(self) -> dict[str, Any]:
        system = self.system
        sources = []
        if self.running is not None:
            for s in self.running.sources:
                sources.append(
                    {"name": s.name, "kind": s.health.kind, "broker": self._sources.get(s.name)}
                )
        triggers = []
        for key, t in system.triggers.items():
            ref = t.resource.spec.subscriber.ref
            workload = None
            if ref is not None and ref.kind == "Workload":
                workload = f"{ref.namespace or t.resource.namespace}/{ref.name}"
            triggers.append(
                {
                    "name": key,
                    "broker": t.broker.key,
                    "subscriber": t.sink.target,
                    "workload": workload,
                    # A canary split: one graph node per target, its edge labelled
                    # with the target's percent.
                    "targets": [
                        {
                            "id": f"workload:{r.workload}" if r.workload else r.target,
                            "workload": r.workload or None,
                            "label": r.workload or r.target,
                            "percent": r.percent,
                        }
                        for r in t.dispatcher.split.routes
                    ]
                    if t.split_trigger
                    else [],
                }
            )
        workloads = list(system.workloads.items) if system.workloads is not None else []
        return {
            "sources": sources,
            "brokers": [{"name": k, "class": b.broker_class} for k, b in system.brokers.items()],
            "triggers": triggers,
            "workloads": [{"name": w} for w in workloads],
        }

    def _sample(self) -> dict[str, Any]:
        system = self.system
        dlq: dict[str, int] = {}
        for queue in system.dead_letter_queues():
            for trig, n in queue.depths().items():
                dlq[trig] = dlq.get(trig, 0) + n
        triggers = {}
        for key, t in system.triggers.items():
            stats = t.dispatcher.stats
            triggers[key] = {
                "backlog": t.subscription.cached_backlog(),
                "inFlight": stats.in_flight,
                "delivered": stats.delivered,
                "failed": stats.failed,
                "dlq": dlq.get(key, 0),
                "oldestAge": _oldest_age(t.subscription),
            }
        workloads = {}
        if system.workloads is not None:
            for key, w in system.workloads.items.items():
                workloads[key] = {
                    "ready": w.actuator.count("ready"),
                    "starting": w.actuator.count("starting"),
                    "draining": w.actuator.count("draining"),
                    "desired": w.actuator.desired,
                }
        sources = {}
        if self.running is not None:
            sources = {s.name: {"emitted": s.health.emitted} for s in self.running.sources}
        return {
            "brokers": {k: {"entered": self.tap.entered.get(k, 0)} for k in system.brokers},
            "triggers": triggers,
            "workloads": workloads,
            "sources": sources,
        }

    def _decided(self, workload: str, decision: Decision, previous: int) -> None:
        self.sampler.decided(
            {
                "t": round(time.time(), 3),
                "workload": workload,
                "from": previous,
                "to": decision.replicas,
                "reason": decision.reason,
            }
        )


def _oldest_age(subscription: object) -> float | None:
    if isinstance(subscription, AgingSubscription):
        age = subscription.oldest_age()
        return None if age is None else round(age, 3)
    return None


def _source_brokers(resources: ResourceSet) -> dict[str, str]:
    """Each source's broker, from its ``spec.sink`` (for the flow graph)."""
    out: dict[str, str] = {}
    for resource in resources.resources:
        sink = getattr(getattr(resource, "spec", None), "sink", None)
        ref = getattr(sink, "ref", None)
        if ref is not None and getattr(ref, "kind", None) == "Broker":
            out[resource.key] = f"{ref.namespace or resource.namespace}/{ref.name}"
    return out
