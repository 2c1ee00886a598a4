"""``eventing tail``: events as they enter a broker, live, with the triggers each one
matched and why the others did not. An event the broker's deduplication answered as
accepted but did not store (its source and id were stored before) is shown marked as
a duplicate, with no trigger: the operator sees that it arrived and why nothing
happened, rather than nothing at all or a delivery that never comes.

Reads ``GET /v1/tail`` of the admin API, a stream of JSON lines (one per event; ``{}``
is a heartbeat; ``{"dropped": N}`` says this tail fell behind and N events were not
shown). Filtering (``--broker``, ``--attr``, ``--cesql``) happens in the server, so
only what is asked for crosses the wire. The server never waits for a slow tail:
it drops events for that tail instead, and this command says so on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from eventing.app import commands
from eventing.app.output import paint
from eventing.errors import ConfigError

#: Seconds without a byte (heartbeats come every 15 s) before the stream is given up.
READ_TIMEOUT = 60.0


def add_parser(sub: Any, default_admin: str) -> None:
    p = sub.add_parser(
        "tail",
        help="live events entering the brokers, with the triggers they matched and why not",
        description="Print each event as it enters a broker (stored), with the triggers "
        "it matched and, for the others, the filter clause that failed. Ctrl-C stops.",
    )
    p.add_argument("--broker", help="only this broker (namespace/name)")
    p.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="only events whose attribute has this value (repeatable, all must hold)",
    )
    p.add_argument("--cesql", help="only events for which this CESQL expression is true")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--admin", default=default_admin, help=f"default {default_admin}")
    p.set_defaults(func=run)


def _url(args: argparse.Namespace) -> str:
    query: list[tuple[str, str]] = [("attr", pair) for pair in args.attr]
    if args.broker:
        query.append(("broker", args.broker))
    if args.cesql:
        query.append(("cesql", args.cesql))
    base = args.admin.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"{args.admin!r} is not an http:// or https:// URL")
    return f"{base}/v1/tail?{urllib.parse.urlencode(query)}"


@commands._guarded
def run(args: argparse.Namespace) -> int:
    try:
        return _tail(args)
    except KeyboardInterrupt:  # Ctrl-C is how a tail ends
        return 0


def _tail(args: argparse.Namespace) -> int:
    commands._parse_pairs(args.attr, "--attr")  # the same rule for names as send/cesql
    request = urllib.request.Request(  # noqa: S310 - scheme checked in _url
        _url(args), headers={"Accept": "application/x-ndjson", **commands.admin_headers(args.admin)}
    )
    try:
        response = urllib.request.urlopen(request, timeout=READ_TIMEOUT)  # noqa: S310
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", f"HTTP {exc.code}")
        raise ConfigError(detail) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach the admin API at {args.admin} ({exc})") from None
    what = args.broker or "every broker"
    print(f"tailing {what} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    shown = 0
    try:
        with response:
            for raw in response:
                record = json.loads(raw)
                if not record:
                    continue  # heartbeat
                if "dropped" in record and "event" not in record:
                    print(
                        f"tail: fell behind, {record['dropped']} event(s) not shown",
                        file=sys.stderr,
                        flush=True,
                    )
                    continue
                if args.json:
                    print(json.dumps(record, separators=(",", ":")), flush=True)
                else:
                    print_record(record)
                shown += 1
                if args.count is not None and shown >= args.count:
                    return 0
    except (TimeoutError, OSError) as exc:
        raise ConfigError(f"the tail stream ended: {exc}") from None
    return 0


def print_record(record: dict[str, Any]) -> None:
    event = record["event"]
    clock = record["time"][11:23]
    head = f"{clock} {record['broker']} {event.get('type')} id={event.get('id')}"
    parts = [paint("-> " + m["trigger"], "green") for m in record["matched"]]
    if record.get("duplicate"):
        parts.append(
            paint("-> duplicate (source and id stored before; not stored again)", "yellow")
        )
    elif not record["matched"]:
        parts.append(paint("-> no trigger (not stored)", "yellow"))
    print(f"{head} source={event.get('source')} {' '.join(parts)}", flush=True)
    for miss in record["notMatched"]:
        print(f"    {paint('x', 'red')} {miss['trigger']}: {miss['why']}", flush=True)
