"""``explain``: what the system would do with one event, and why.

One function, :func:`explain_event`, answers for a set of triggers, whether they come
from a directory of manifests (offline, :func:`offline_triggers`) or from a running
system (:func:`running_triggers`, served by ``POST /v1/explain``): would the ingress
accept the event (the same validation and TTL stamping the ingress runs), which
triggers of its broker match and, clause by clause, why the others do not
(:mod:`triggers.explain`), and where each match would be delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eventing.broker.stamps import now_rfc3339, stamp
from eventing.errors import InvalidEventError
from eventing.events import TTL, AttributeValue, Event, validate
from eventing.resources.base import Destination
from eventing.resources.broker import Broker as BrokerResource
from eventing.resources.delivery import merge
from eventing.resources.loader import ResourceSet
from eventing.resources.split import Subscriber
from eventing.resources.trigger import Trigger
from triggers.explain import explain_trigger, why_not

if TYPE_CHECKING:
    from eventing.app.system import System

#: Most attributes an explained event may carry (the request is bounded before work).
MAX_ATTRIBUTES = 200


@dataclass(frozen=True)
class TriggerView:
    """What explain needs of one trigger: its spec and where it delivers."""

    resource: Trigger
    broker: str
    subscriber: str
    dead_letter: str | None


def destination_text(dest: Destination | None, namespace: str) -> str | None:
    """A destination as ``eventing status`` shows it (``http://...``, ``log:``,
    ``workload:<ns>/<name>``)."""
    if dest is None:
        return None
    if isinstance(dest, Subscriber) and dest.split is not None:
        parts = (f"{destination_text(t, namespace)} {t.percent}%" for t in dest.split)
        return "split: " + ", ".join(parts)
    if dest.ref is not None:
        ns = dest.ref.namespace or namespace
        if dest.ref.kind == "Workload":
            return f"workload:{ns}/{dest.ref.name}"
        return f"{dest.ref.kind}:{ns}/{dest.ref.name} (not resolvable on one machine)"
    return dest.uri


def offline_triggers(resources: ResourceSet) -> tuple[list[str], list[TriggerView]]:
    """The brokers and triggers of a directory of manifests."""
    brokers: dict[str, BrokerResource] = {b.key: b for b in resources.of(BrokerResource)}
    views = []
    for trig in resources.of(Trigger):
        key = f"{trig.namespace}/{trig.spec.broker}"
        broker = brokers.get(key)
        delivery = merge(trig.spec.delivery, broker.spec.delivery if broker else None)
        views.append(
            TriggerView(
                trig,
                key,
                destination_text(trig.spec.subscriber, trig.namespace) or "-",
                destination_text(delivery.dead_letter_sink, trig.namespace),
            )
        )
    return list(brokers), views


def running_triggers(system: System) -> tuple[list[str], list[TriggerView]]:
    """The brokers and triggers of a running system, with the sinks it resolved."""
    views = []
    for runtime in system.triggers.values():
        target = runtime.dispatcher.dead_letter
        dead_letter = None
        if target is not None:
            dead_letter = "dlq:" if target.sink is None else target.sink.target
        views.append(
            TriggerView(runtime.resource, runtime.broker.key, runtime.sink.target, dead_letter)
        )
    return list(system.brokers), views


def pick_broker(brokers: Sequence[str], wanted: str | None) -> str:
    """``wanted``, else the only broker, else ``default/default``."""
    if wanted:
        if wanted not in brokers:
            raise ValueError(f"no broker {wanted!r} (brokers: {', '.join(brokers) or 'none'})")
        return wanted
    if len(brokers) == 1:
        return brokers[0]
    if "default/default" in brokers:
        return "default/default"
    raise ValueError(f"name the broker with --broker (brokers: {', '.join(brokers) or 'none'})")


def admission(attributes: Mapping[str, AttributeValue]) -> dict[str, Any]:
    """What the ingress would answer, by the ingress's own checks (validation, then the
    TTL stamp), and the TTL the event would be stored with."""
    given = attributes.get(TTL)
    probe = Event(dict(attributes), None)
    try:
        validate(probe.attributes)
        stamp(probe, now_rfc3339())
    except InvalidEventError as exc:
        return {
            "accepted": False,
            "status": 400,
            "reason": str(exc),
            "ttl": {"given": given, "stored": None},
        }
    stored = probe.attributes[TTL]
    outcome = f"none given: stored with {stored}" if given is None else f"{given}: stored as given"
    return {
        "accepted": True,
        "status": 202,
        "reason": None,
        "ttl": {"given": given, "stored": stored, "outcome": outcome},
    }


def explain_event(
    attributes: Mapping[str, AttributeValue],
    broker: str,
    triggers: Iterable[TriggerView],
) -> dict[str, Any]:
    """Everything about one event on ``broker``: admission, each trigger's verdict with
    its clauses, and the destinations it would reach."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"an event has at most {MAX_ATTRIBUTES} attributes")
    admitted = admission(attributes)
    rows: list[dict[str, Any]] = []
    for view in triggers:
        if view.broker != broker:
            continue
        result = explain_trigger(view.resource.spec, attributes)
        rows.append(
            {
                "name": view.resource.key,
                "broker": view.broker,
                "subscriber": view.subscriber,
                "deadLetterSink": view.dead_letter,
                "matched": result["matched"],
                "reason": result["reason"],
                "why": why_not(result),
                "mode": result["mode"],
                "clauses": result["clauses"],
            }
        )
    matched = [r for r in rows if r["matched"]]
    if not admitted["accepted"]:
        outcome = f"refused with {admitted['status']}: {admitted['reason']}"
    elif not matched:
        outcome = "accepted (202) but not stored: no trigger of the broker matches (no-trigger)"
    else:
        outcome = f"stored for {len(matched)} trigger(s)"
    return {
        "event": dict(attributes),
        "broker": broker,
        "admission": admitted,
        "dedup": "a plain POST is stored again when sent twice unless the broker has "
        "eventing.local/dedup-ingress: 'true'; events of sources whose ids come from "
        "upstream (GitHub, GitLab, RabbitMQ, Kafka) are stored once per (source, id) "
        "within the broker's window (docs/delivery.md#deduplication)",
        "triggers": rows,
        "deliveredTo": [{"trigger": r["name"], "subscriber": r["subscriber"]} for r in matched]
        if admitted["accepted"]
        else [],
        "outcome": outcome,
    }
