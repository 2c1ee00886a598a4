"""Plain-text tables for people reading ``eventing status`` and ``eventing dlq list``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from eventing.app.output import paint


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines[0] = paint(lines[0], "bold")  # after padding: the codes take no column
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def print_status(payload: dict[str, Any]) -> None:
    print(f"ingress {payload['ingress']}   admin {payload['admin']}   up {payload['uptime']}s\n")
    print(
        table(
            ["BROKER", "CLASS", "DURABLE", "STORED", "URL"],
            [
                [b["name"], b["class"], b["durable"], b["storedEvents"], b["url"]]
                for b in payload["brokers"]
            ],
        )
    )
    print()
    print(
        table(
            [
                "TRIGGER",
                "BACKLOG",
                "OLDEST",
                "IN-FLIGHT",
                "DELIVERED",
                "FAILED",
                "RETRIED",
                "DLQ",
                "SUBSCRIBER",
                "LAST ERROR",
            ],
            [
                [
                    t["name"],
                    t["backlog"],
                    _age(t.get("oldestAge")),
                    t["inFlight"],
                    t["delivered"],
                    t["failed"],
                    t["retried"],
                    t["dlqDepth"],
                    t["subscriber"],
                    t["lastError"],
                ]
                for t in payload["triggers"]
            ],
        )
    )
    splits = [
        [t["name"], f"{r['percent']}%", r["target"], r["routed"], r["delivered"], r["failed"]]
        for t in payload["triggers"]
        for r in t.get("split") or ()
    ]
    if splits:
        print()
        print(
            table(["SPLIT TRIGGER", "PERCENT", "TARGET", "ROUTED", "DELIVERED", "FAILED"], splits)
        )
    drops = [
        [b["name"], *key.split(":", 1), n]
        for b in payload["brokers"]
        for key, n in sorted(b.get("dropped", {}).items())
    ]
    if drops:
        print()
        print(table(["BROKER", "NOT DELIVERED TO", "REASON", "EVENTS"], drops))
    if payload.get("sources"):
        print()
        print(
            table(
                [
                    "SOURCE",
                    "KIND",
                    "STATE",
                    "RECEIVED",
                    "EMITTED",
                    "REFUSED",
                    "RECONNECTS",
                    "LAST ERROR",
                ],
                [
                    [
                        s["name"],
                        s["kind"],
                        s["state"],
                        s["received"],
                        s["emitted"],
                        s["refused"],
                        s["reconnects"],
                        s["last_error"],
                    ]
                    for s in payload["sources"]
                ],
            )
        )
    if payload.get("workloads"):
        print()
        print(
            table(
                [
                    "WORKLOAD",
                    "READY",
                    "STARTING",
                    "DRAINING",
                    "DESIRED",
                    "BACKLOG",
                    "LAST DECISION",
                    "ERROR",
                ],
                [
                    [
                        w["name"],
                        w["ready"],
                        w["starting"],
                        w["draining"],
                        w["desired"],
                        w["backlog"],
                        w["reason"],
                        w.get("error") or "",
                    ]
                    for w in payload["workloads"]
                ],
            )
        )
    if payload.get("jobs"):
        print()
        print(
            table(
                [
                    "JOB WORKLOAD",
                    "RUNNING",
                    "QUEUED",
                    "PARALLELISM",
                    "SUCCEEDED",
                    "FAILED",
                    "TIMED OUT",
                    "CANCELLED",
                ],
                [
                    [
                        j["name"],
                        j["running"],
                        j.get("queued", 0),
                        j["parallelism"],
                        *(j["finished"].get(end, 0) for end in _JOB_ENDS),
                    ]
                    for j in payload["jobs"]
                ],
            )
        )
    _print_reconcile(payload.get("reconcile"))


def _print_reconcile(state: dict[str, Any] | None) -> None:
    """Live reload: what did not load (validate's words), not applied, or was kept."""
    if not state:
        return
    lines = [f"  {m}" for r in state.get("rejected", []) for m in r["messages"]]
    lines += [f"  {n['kind']} {n['name']}: not applied: {n['message']}"
              for n in state.get("notApplied", [])]  # fmt: skip
    lines += [f"  {n['message']}" for n in state.get("notes", [])]
    if state.get("error"):
        lines.insert(0, f"  {state['error']}")
    if lines:
        print()
        print("CHANGES NOT APPLIED (the last good version keeps running):")
        print("\n".join(lines))


#: How a job ends, in the columns of the JOB WORKLOAD table.
_JOB_ENDS = ("succeeded", "failed", "timeout", "cancelled")


def print_dlq(items: list[dict[str, Any]]) -> None:
    if not items:
        print("no dead letters")
        return
    print(
        table(
            ["ID", "TRIGGER", "FAILED", "ATTEMPTS", "STATUS", "EVENT", "REASON"],
            [
                [
                    d["id"],
                    d["trigger"],
                    _ago(d["failedAt"]),
                    d["attempts"],
                    d["status"],
                    f"{d['attributes'].get('type')} {d['attributes'].get('id')}",
                    d["reason"],
                ]
                for d in items
            ],
        )
    )


def _ago(when: float) -> str:
    seconds = max(0, int(time.time() - when))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _age(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
