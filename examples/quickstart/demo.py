"""The README's first command: start the subscriber and ``eventing run`` on this
directory, send a few events with ``eventing send``, and show where they arrived.

Pass ``--keep-running`` to leave the system up afterwards (Ctrl-C stops it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BROKER = "http://127.0.0.1:8080/default/default"
ADMIN = "http://127.0.0.1:8090"

EVENTS = [
    ("com.example.order.created", {}, '{"order": 1, "total": 42}'),
    ("com.example.order.shipped", {}, '{"order": 1}'),
    ("com.example.payment.settled", {"region": "eu"}, '{"order": 1, "eur": 42}'),
    ("com.example.payment.settled", {"region": "us"}, '{"order": 2, "usd": 7}'),
    ("com.example.order.created", {}, '{"order": 3, "total": 5}'),
]


def wait_until(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: {url} did not come up") from None
            time.sleep(0.1)


def eventing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventing.app.cli", *args],
        check=False,
        text=True,
        capture_output=True,
    )


def main() -> int:
    keep = "--keep-running" in sys.argv
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [
        subprocess.Popen([sys.executable, str(HERE / "subscriber.py"), "8181"], env=env),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eventing.app.cli",
                "run",
                str(HERE),
                "--data-dir",
                str(ROOT / ".state" / "quickstart"),
            ],
            env=env,
        ),
    ]
    try:
        wait_until(f"{ADMIN}/readyz", time.monotonic() + 30)
        print("\n== sending events (eventing send ...)\n", flush=True)
        for type_, exts, data in EVENTS:
            ext_args = [a for k, v in exts.items() for a in ("--ext", f"{k}={v}")]
            result = eventing(
                "send",
                "--to",
                BROKER,
                "--type",
                type_,
                "--source",
                "/demo",
                "--data",
                data,
                *ext_args,
            )
            print(
                f"  {type_} {exts or ''} -> {result.stdout.strip() or result.stderr.strip()}",
                flush=True,
            )
        deadline = time.monotonic() + 15
        while True:
            with urllib.request.urlopen(f"{ADMIN}/v1/status", timeout=2) as r:  # noqa: S310
                status = json.load(r)
            if all(t["backlog"] == 0 for t in status["triggers"]) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        print("\n== eventing status\n", flush=True)
        print(eventing("status").stdout, flush=True)
        print(
            "3 of 5 events matched a trigger (2 orders created, 1 EU payment); the others\n"
            "were dropped by the filters and counted (curl -s "
            f"{ADMIN}/metrics | grep drops).",
            flush=True,
        )
        if keep:
            print(
                "\nStill running: try `eventing send --type com.example.order.created "
                "--data '{}'`. Ctrl-C stops.",
                flush=True,
            )
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
