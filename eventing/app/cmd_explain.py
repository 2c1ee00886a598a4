"""``eventing explain``: which triggers an event matches, clause by clause, and where
it would be delivered. The answer to "why didn't my trigger fire?".

The event comes from ``--attr NAME=VALUE`` and/or ``--event FILE`` (structured JSON),
or is one the running system has seen: ``--id`` (a recent event, by its CloudEvents
id) or ``--dlq`` (a dead letter). Against ``--manifests DIR`` it needs no running
system; otherwise it asks the admin API (``POST /v1/explain``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eventing.app import commands
from eventing.app.explain import explain_event, offline_triggers, pick_broker
from eventing.app.output import add_output, paint, render
from eventing.app.registry import kind_registry
from eventing.errors import ConfigError
from eventing.events import AttributeValue
from eventing.resources.loader import load_resources

#: Attributes an ``--attr`` event starts from, so a filter test needs only what matters.
DEFAULTS: dict[str, AttributeValue] = {"specversion": "1.0", "id": "explain", "source": "/cli"}
MAX_EVENT_FILE = 1024 * 1024


def add_parser(sub: Any, default_admin: str) -> None:
    p = sub.add_parser(
        "explain",
        help="which triggers an event matches (clause by clause) and where it would go",
        description="Explain what the broker would do with an event: admission (validation, "
        "TTL), every trigger of its broker with each filter clause's verdict, and the "
        "destinations. Exit status 0 when the event would be delivered somewhere, else 1.",
    )
    p.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an attribute of the event (repeatable); starts from specversion=1.0, "
        "id=explain, source=/cli",
    )
    p.add_argument("--event", type=Path, help="a structured JSON event file")
    p.add_argument("--id", dest="event_id", help="a recent event of the running system, by id")
    p.add_argument("--dlq", type=int, help="a dead letter of the running system, by its id")
    p.add_argument("--broker", help="namespace/name (default: the only broker, or default/default)")
    p.add_argument(
        "-f",
        "--manifests",
        type=Path,
        help="explain against this directory of manifests instead of a running system",
    )
    p.add_argument("--admin", default=default_admin, help=f"default {default_admin}")
    add_output(p)
    p.set_defaults(func=run)


def event_attributes(args: argparse.Namespace) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    if args.event is not None:
        raw = Path(args.event).read_bytes()[: MAX_EVENT_FILE + 1]
        if len(raw) > MAX_EVENT_FILE:
            raise ConfigError(f"{args.event}: larger than {MAX_EVENT_FILE} bytes")
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ConfigError(f"{args.event}: not a structured JSON event (an object)")
        attributes = {
            k: v
            for k, v in doc.items()
            if k not in ("data", "data_base64") and isinstance(v, str | int | bool)
        }
    elif args.attr:
        attributes = dict(DEFAULTS)
    attributes.update(commands._parse_pairs(args.attr, "--attr"))
    return attributes


@commands._guarded
def run(args: argparse.Namespace) -> int:
    stored = args.event_id is not None or args.dlq is not None
    if not stored and args.event is None and not args.attr:
        raise ConfigError("give the event: --attr NAME=VALUE, --event FILE, --id or --dlq")
    if args.manifests is not None:
        if stored:
            raise ConfigError("--id and --dlq need a running system, not --manifests")
        brokers, views = offline_triggers(load_resources(args.manifests, kind_registry()))
        payload = explain_event(event_attributes(args), pick_broker(brokers, args.broker), views)
    else:
        request: dict[str, Any] = {"broker": args.broker}
        if args.dlq is not None:
            request["deadLetter"] = args.dlq
        elif args.event_id is not None:
            request["id"] = args.event_id
        else:
            request["attributes"] = event_attributes(args)
        code, payload = commands._admin_post(args, "/v1/explain", request)
        if code >= 400:
            raise ConfigError(payload.get("error", f"HTTP {code}"))
    render(args, payload, print_explanation)
    return 0 if payload["deliveredTo"] else 1


def print_explanation(doc: dict[str, Any]) -> None:
    event = doc["event"]
    head = " ".join(f"{k}={event[k]}" for k in ("type", "source", "id") if k in event)
    print(f"event {head} on broker {doc['broker']}")
    admission = doc["admission"]
    if admission["accepted"]:
        print(f"  admission: {paint('202 accepted', 'green')}; ttl {admission['ttl']['outcome']}")
    else:
        print(f"  admission: {paint(str(admission['status']), 'red')} {admission['reason']}")
    print(f"  outcome:   {doc['outcome']}")
    if not doc["triggers"]:
        print("  (the broker has no triggers)")
    for row in doc["triggers"]:
        print()
        if row["matched"]:
            where = row["subscriber"]
            workload = row.get("workload")
            if workload is not None and workload["ready"] == 0:
                where += " (no replica ready now: the event would wait for one to start)"
            elif workload is not None:
                where += f" ({workload['ready']} replica(s) ready)"
            print(f"{paint('MATCH', 'green')}    {row['name']} -> {where}")
        else:
            print(f"{paint('NO MATCH', 'red')} {row['name']} ({row['reason']}): {row['why']}")
        if row["mode"] == "none":
            print("    no filter: every event matches")
        for clause in row["clauses"]:
            _print_clause(clause, 1)


_MARK = {"pass": ("pass", "green"), "fail": ("fail", "red"), "no-filter": ("no-filter", "dim")}


def _print_clause(clause: dict[str, Any], depth: int) -> None:
    pad = "    " * depth
    word, colour = _MARK[clause["verdict"]]
    reason = f" ({clause['reason']})" if clause["reason"] not in (None, "filtered") else ""
    detail = ""
    if clause["dialect"] == "cesql":
        detail = f" {clause['expression']!r}"
        if "value" in clause:
            detail += f" = {json.dumps(clause['value'])}"
        if clause.get("error"):
            detail += f"  error {clause['error']['kind']}: {clause['error']['message']}"
    print(f"{pad}{clause['path']} {clause['dialect']}: {paint(word, colour)}{reason}{detail}")
    for check in clause.get("checks", []):
        mark = paint("ok", "green") if check["ok"] else paint("no", "red")
        actual = "missing" if check["actual"] is None else repr(check["actual"])
        print(f"{pad}    {mark}  {check['attribute']}: wants {check['expected']!r}, is {actual}")
    for child in clause.get("children", []):
        _print_clause(child, depth + 1)
