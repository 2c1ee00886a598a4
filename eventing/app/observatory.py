"""Wires what operators watch into the running system: the tap on every path into a
broker, the sampler behind the dashboard, and the hooks of :mod:`eventing.ui` (explain,
tail filters and verdicts, topology), which need the filters and CESQL that only the
composition root may import.

Events reach a broker three ways, and each is tapped after the broker stored them:
the ingress (through :class:`TappedBroker`, which the ingress and its workers get
instead of the broker), the sources and the replies (through
``System.on_publish``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from eventing.app.aging import AgingSubscription
from eventing.app.explain import TriggerView, explain_event, pick_broker, running_triggers
from eventing.app.system import ERROR_EXTENSIONS, System
from eventing.app.tracing import OtlpExporter
from eventing.autoscaler.decide import Decision
from eventing.broker.base import Publisher
from eventing.events import AttributeValue, Event, canonical
from eventing.resources.loader import ResourceSet
from eventing.ui.hooks import Matcher, UiHooks
from eventing.ui.routes import register
from eventing.ui.series import Sampler
from eventing.ui.tap import Seen, Tap
from triggers.explain import explain_trigger, why_not

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
        self._by_broker: dict[str, list[TriggerView]] = {}
        system.on_publish = self.tap.offer
        if system.workloads is not None:
            system.workloads.listeners.append(self._decided)
        self._register_metrics()
        self.hooks = UiHooks(
            tap=self.tap,
            sampler=self.sampler,
            explain=self.explain,
            matcher=self.matcher,
            verdicts=self.verdicts,
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

    # --- explain -------------------------------------------------------------------

    async def explain(self, body: Mapping[str, Any]) -> dict[str, Any]:
        brokers, views = running_triggers(self.system)
        wanted = body.get("broker")
        if wanted is not None and not isinstance(wanted, str):
            raise ValueError("broker must be a string namespace/name")
        broker: str | None
        if body.get("deadLetter") is not None:
            attributes, broker = await self._dead_letter(body["deadLetter"])
        elif body.get("id") is not None:
            seen = self.tap.find(str(body["id"]), wanted)
            if seen is None:
                raise LookupError(
                    f"no recent event with id {str(body['id'])[:100]!r} "
                    f"(the last {self.tap.recent.maxlen} events are kept)"
                )
            attributes, broker = dict(seen.attributes), seen.broker
        else:
            attributes, broker = _attributes(body.get("attributes")), wanted
        doc = explain_event(attributes, pick_broker(brokers, broker), views)
        self._workload_states(doc)
        return doc

    def _workload_states(self, doc: dict[str, Any]) -> None:
        """A trigger that delivers to a workload: how many replicas are ready for it."""
        workloads = self.system.workloads
        if workloads is None:
            return
        for row in doc["triggers"]:
            key = str(row["subscriber"]).removeprefix("workload:")
            runtime = workloads.items.get(key)
            if runtime is not None:
                row["workload"] = {
                    "ready": runtime.pool.count("ready"),
                    "desired": runtime.pool.desired,
                }

    async def _dead_letter(self, raw: object) -> tuple[dict[str, AttributeValue], str]:
        if not isinstance(raw, int):
            raise ValueError("deadLetter must be an integer id")
        for queue in self.system.dead_letter_queues():
            dl = await queue.get_dead_letter(raw)
            if dl is not None:
                attributes = {
                    k: v for k, v in dl.event.attributes.items() if k not in ERROR_EXTENSIONS
                }
                return attributes, dl.broker
        raise LookupError(f"no dead letter {raw}")

    # --- tail ----------------------------------------------------------------------

    def matcher(
        self, broker: str | None, exact: Mapping[str, str], expression: str | None
    ) -> Matcher:
        if broker is not None and broker not in self.system.brokers:
            raise ValueError(f"no broker {broker!r}")
        node = None
        if expression is not None:
            from triggers.cesql import CesqlParseError
            from triggers.filters.cesql import cesql

            try:
                node = cesql(expression)
            except CesqlParseError as exc:
                raise ValueError(f"invalid CESQL: {exc}") from None
        pairs = tuple(exact.items())

        def matches(seen: Seen) -> bool:
            if broker is not None and seen.broker != broker:
                return False
            for name, value in pairs:
                got = seen.attributes.get(name)
                if got is None or canonical(got) != value:
                    return False
            return node is None or node(seen.attributes) is None

        return matches

    def verdicts(self, seen: Seen) -> dict[str, Any]:
        matched, missed = [], []
        for view in self._views(seen.broker):
            result = explain_trigger(view.resource.spec, seen.attributes)
            if result["matched"]:
                matched.append({"trigger": view.resource.key, "subscriber": view.subscriber})
            else:
                missed.append(
                    {
                        "trigger": view.resource.key,
                        "reason": result["reason"],
                        "why": why_not(result),
                    }
                )
        return {
            "time": datetime.fromtimestamp(seen.at, UTC).isoformat(timespec="milliseconds"),
            "broker": seen.broker,
            "event": dict(seen.attributes),
            "dataBytes": seen.data_bytes,
            "matched": matched,
            "notMatched": missed,
        }

    def _views(self, broker: str) -> list[TriggerView]:
        """The triggers of ``broker`` (the system's triggers are fixed once it runs)."""
        views = self._by_broker.get(broker)
        if views is None:
            views = [v for v in running_triggers(self.system)[1] if v.broker == broker]
            self._by_broker[broker] = views
        return views

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


def _attributes(raw: object) -> dict[str, AttributeValue]:
    if not isinstance(raw, dict):
        raise ValueError('send {"attributes": {...}}, {"id": "..."} or {"deadLetter": 1}')
    out: dict[str, AttributeValue] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str | int | bool):
            raise ValueError("attributes map names to strings, integers or booleans")
        out[name] = value
    return out


def _source_brokers(resources: ResourceSet) -> dict[str, str]:
    """Each source's broker, from its ``spec.sink`` (for the flow graph)."""
    out: dict[str, str] = {}
    for resource in resources.resources:
        sink = getattr(getattr(resource, "spec", None), "sink", None)
        ref = getattr(sink, "ref", None)
        if ref is not None and getattr(ref, "kind", None) == "Broker":
            out[resource.key] = f"{ref.namespace or resource.namespace}/{ref.name}"
    return out
