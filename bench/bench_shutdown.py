"""Shutdown benchmark (not a test): how long ``eventing run`` takes to stop on SIGTERM
with many triggers whose subscriber accepts connections and never answers, while
deliveries are on the wire, against the drain deadline (goal: within deadline + 1 s).

    .venv/bin/python bench/bench_shutdown.py [--triggers 1 1000] [--drain-timeout 10]

Each trigger gets one event (a batched POST of 100 events per request), so every
trigger has a delivery in flight to the hung subscriber when SIGTERM arrives. Then it
checks the store: every accepted event is still there (pending, for the next run).
Prints a table: triggers, events accepted, shutdown seconds, seconds over the deadline,
exit code, pending events left in the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pipeline import eventing_run

from eventing.workloads.replica import free_port

ROOT = Path(__file__).resolve().parents[1]


async def _hang(port: int) -> None:
    """Accept, read, never answer: every delivery stays on the wire."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def manifests(directory: Path, triggers: int, sub_url: str) -> None:
    parts = ["apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"]
    for i in range(triggers):
        parts.append(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\n"
            f"metadata: {{name: t{i}}}\nspec:\n  broker: default\n"
            f"  filters: [{{exact: {{type: bench.t{i}}}}}]\n"
            f'  subscriber: {{uri: "{sub_url}/events"}}\n'
            "  delivery: {timeout: PT10M, retry: 0}\n"
        )
    (directory / "bench.yaml").write_text("---\n".join(parts))


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def post_events(ingress: str, triggers: int, rounds: int = 1) -> int:
    accepted = 0
    for start in range(0, triggers * rounds, 100):
        batch = [
            {"specversion": "1.0", "id": f"e{i}", "source": "/b", "type": f"bench.t{i % triggers}"}
            for i in range(start, min(start + 100, triggers * rounds))
        ]
        request = urllib.request.Request(
            ingress,
            data=json.dumps(batch).encode(),
            headers={"Content-Type": "application/cloudevents-batch+json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status // 100 == 2:
                accepted += len(batch)
    return accepted


def connections_to(port: int) -> int:
    """Established connections to the hung subscriber (deliveries on the wire)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote = fields[2]
        if fields[3] == "01" and int(remote.split(":")[1], 16) == port:
            count += 1
    return count


def pending(data_dir: Path) -> int:
    """Deliveries still pending in the store after the stop (all of them: none was
    answered), read the way the next run will."""
    db = sqlite3.connect(data_dir / "events.db")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] == 0:  # the layout before 1
            return int(db.execute("select count(*) from pending").fetchone()[0])
        # One row per match: an event of one trigger carries it, the others' rows are
        # in pending_many (eventing.broker.sqlite_schema).
        return int(
            db.execute(
                "select (select count(*) from events where trigger is not null)"
                " + (select count(*) from pending_many)"
            ).fetchone()[0]
        )
    finally:
        db.close()


def run_once(
    triggers: int, drain: float, rounds: int, profile: Path | None
) -> tuple[int, float, int, int, int]:
    sub_port, port, admin_port = free_port(), free_port(), free_port()
    hung = subprocess.Popen([sys.executable, __file__, "--hang", str(sub_port)], cwd=ROOT)
    work = Path(tempfile.mkdtemp(prefix="eventing-shutdown-"))
    manifests(work, triggers, f"http://127.0.0.1:{sub_port}")
    log = (work / "run.log").open("wb")
    system = subprocess.Popen(
        [
            sys.executable,
            *eventing_run(work, port, admin_port, "--drain-timeout", str(drain), log="INFO"),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{admin_port}/healthz")
        accepted = post_events(f"http://127.0.0.1:{port}/default/default", triggers, rounds)
        deadline = time.monotonic() + 60
        while connections_to(sub_port) < min(triggers, 100) and time.monotonic() < deadline:
            time.sleep(0.05)
        on_wire = connections_to(sub_port)
        spy = None
        if profile is not None:  # py-spy (pip install py-spy) samples the shutdown
            spy = subprocess.Popen(
                ["py-spy", "record", "-p", str(system.pid), "-o", str(profile), "-f", "raw"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)  # py-spy attaches
        started = time.monotonic()
        system.send_signal(signal.SIGTERM)
        code = system.wait(120)
        took = time.monotonic() - started
        if spy is not None:
            spy.wait(30)
    finally:
        if system.poll() is None:
            system.kill()
        hung.kill()
        hung.wait()
        log.close()
    left = pending(work / "data")
    print(f"  log: {work / 'run.log'}", file=sys.stderr)
    return accepted, took, code, on_wire, left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    parser.add_argument("--events-per-trigger", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the shutdown")
    parser.add_argument("--hang", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hang:
        asyncio.run(_hang(args.hang))
        return 0
    print(f"drain deadline {args.drain_timeout:.0f} s, subscriber accepts and never answers\n")
    print(
        f"{'triggers':>8} {'accepted':>9} {'on wire':>8} {'shutdown s':>11} "
        f"{'over deadline':>14} {'exit':>5} {'pending after':>14}"
    )
    for n in args.triggers:
        accepted, took, code, on_wire, left = run_once(
            n, args.drain_timeout, args.events_per_trigger, args.profile
        )
        print(
            f"{n:>8} {accepted:>9} {on_wire:>8} {took:>11.2f} "
            f"{took - args.drain_timeout:>+14.2f} {code:>5} {left:>14}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
