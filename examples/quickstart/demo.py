"""The README's first command: run the quickstart and show, live, what happens.

1. ``eventing run examples/quickstart`` starts (the order-processor workload is at
   zero replicas);
2. a few events of different types: each goes where its trigger's filter says;
3. a burst of orders: the workload scales out, the backlog drains, and once idle for
   the cooldown the replicas go back to zero;
4. one more order: a replica cold-starts and the order is delivered.

Pass ``--keep-running`` to leave the system up afterwards (Ctrl-C stops it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BROKER = "http://127.0.0.1:8080/default/default"
ADMIN = "http://127.0.0.1:8090"
WORKLOAD = "default/order-processor"
ORDERS = "default/new-orders"


def get(path: str) -> Any:
    with urllib.request.urlopen(f"{ADMIN}{path}", timeout=5) as r:  # noqa: S310 - loopback
        return json.load(r)


def wait_up(deadline: float) -> None:
    while True:
        try:
            get("/readyz")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("demo: eventing did not come up") from None
            time.sleep(0.1)


def post(event_type: str, data: str, **extensions: str) -> int:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "/demo",
        "ce-type": event_type,
        "Content-Type": "application/json",
    }
    headers.update({f"ce-{k}": v for k, v in extensions.items()})
    request = urllib.request.Request(BROKER, data=data.encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - loopback
        return int(r.status)


def snapshot() -> tuple[dict[str, Any], dict[str, Any]]:
    status = get("/v1/status")
    workload = next(w for w in status["workloads"] if w["name"] == WORKLOAD)
    trigger = next(t for t in status["triggers"] if t["name"] == ORDERS)
    return workload, trigger


def show(label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    w, t = snapshot()
    print(
        f"  {label:<10} replicas ready={w['ready']} starting={w['starting']} "
        f"draining={w['draining']} desired={w['desired']} | backlog={t['backlog']} "
        f"delivered={t['delivered']}",
        flush=True,
    )
    return w, t


def watch(until: Any, label: str, timeout: float, every: float = 0.5) -> dict[str, Any]:
    """Print the workload's state every ``every`` s until ``until(workload, trigger)``."""
    deadline = time.monotonic() + timeout
    reason = None
    while True:
        w, t = show(label)
        if w["reason"] and w["reason"] != reason:
            reason = w["reason"]
            print(f"             decision: {reason}", flush=True)
        if until(w, t) or time.monotonic() > deadline:
            return w
        time.sleep(every)


def main() -> int:
    keep = "--keep-running" in sys.argv
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    eventing = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventing.app.cli",
            "run",
            str(HERE.relative_to(ROOT)),
            "--data-dir",
            str(ROOT / ".state" / "quickstart"),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_up(time.monotonic() + 30)
        print("\n== 1. routing: each event goes where its trigger's filter says\n", flush=True)
        for event_type, data, ext in [
            ("com.example.order.created", '{"order": 1}', {}),
            ("com.example.order.shipped", '{"order": 1}', {}),
            ("com.example.payment.settled", '{"order": 1, "eur": 42}', {"region": "eu"}),
            ("com.example.payment.settled", '{"order": 2, "usd": 7}', {"region": "us"}),
        ]:
            status = post(event_type, data, **ext)
            print(f"  sent {event_type} {ext or ''} -> HTTP {status}", flush=True)
        print(
            "  (order.created -> order-processor; the EU payment -> log:; the other two\n"
            "   match no trigger and are dropped, counted in /metrics)\n",
            flush=True,
        )
        watch(lambda w, t: t["delivered"] >= 1, "activation", 30)

        print(
            "\n== 2. a burst of 40 orders: the workload scales out, then back to zero\n", flush=True
        )
        for n in range(40):
            post("com.example.order.created", f'{{"order": {100 + n}}}')
        watch(lambda w, t: t["backlog"] == 0, "burst", 60)
        print(
            "\n  backlog drained: replicas are removed as the 3 s stabilisation window\n"
            "  allows, and the last one after 5 idle seconds (cooldownPeriod)\n",
            flush=True,
        )
        watch(lambda w, t: w["ready"] + w["starting"] + w["draining"] == 0, "idle", 30, 1.0)

        print("\n== 3. one more order: a replica cold-starts and takes it\n", flush=True)
        before = snapshot()[1]["delivered"]
        started = time.monotonic()
        post("com.example.order.created", '{"order": 999}')
        watch(lambda w, t: t["delivered"] > before, "cold start", 30, 0.1)
        print(
            f"\n  delivered {1000 * (time.monotonic() - started):.0f} ms after it was "
            "sent, starting from zero replicas\n",
            flush=True,
        )
        print(
            subprocess.run(
                [sys.executable, "-m", "eventing.app.cli", "status"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout,
            flush=True,
        )
        if keep:
            print(
                "Still running; try: eventing send --type com.example.order.created "
                "--data '{}'   (Ctrl-C stops)",
                flush=True,
            )
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        eventing.send_signal(signal.SIGTERM)
        eventing.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
