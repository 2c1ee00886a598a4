"""Explanations of live events for ``POST /v1/explain`` and ``GET /v1/tail``: the
running system's triggers, the tap's recent events and the dead letters, explained
by :mod:`eventing.app.explain` and :mod:`triggers.explain` (the routing code's own
verdicts)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from eventing.app.explain import TriggerView, explain_event, pick_broker, running_triggers
from eventing.app.system import ERROR_EXTENSIONS, System
from eventing.events import AttributeValue, canonical
from eventing.ui.hooks import Matcher
from eventing.ui.tap import Seen, Tap
from triggers.explain import explain_trigger, why_not


class LiveExplainer:
    def __init__(self, system: System, tap: Tap) -> None:
        self.system = system
        self.tap = tap
        self._by_broker: dict[str, list[TriggerView]] = {}

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
        """What ``tail`` shows of an event: the triggers it matched and why the others
        did not; a duplicate (answered as accepted, not stored: its source and id were
        stored before) is marked and went to no trigger, so none is listed."""
        matched, missed = [], []
        for view in [] if seen.duplicate else self._views(seen.broker):
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
            "duplicate": seen.duplicate,
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


def _attributes(raw: object) -> dict[str, AttributeValue]:
    if not isinstance(raw, dict):
        raise ValueError('send {"attributes": {...}}, {"id": "..."} or {"deadLetter": 1}')
    out: dict[str, AttributeValue] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str | int | bool):
            raise ValueError("attributes map names to strings, integers or booleans")
        out[name] = value
    return out
