"""CPU per event of the Kafka broker class, per process, against the raw aiokafka
client's CPU per record (not a test): where bench_brokers.py's rate ratio goes.

    .venv/bin/python bench/bench_kafka_cpu.py [--seconds 8] [--connections 32] [--rounds 3]
        [--profile DIR]

Each round: (1) the class as bench_brokers.py runs it (wrk -> ``eventing run`` with a
Kafka-class Broker, one Trigger -> the lean subscriber), reading /proc for the CPU
seconds of the main process, each ingress worker, the subscriber and the Kafka server
(the JVM found by ``pgrep -f kafka.Kafka``) over the load and until the last event is
delivered, divided by the events delivered; (2) bench_brokers.py's raw aiokafka
produce (acks=all, idempotence) + consume loop in this process, its own CPU and the
Kafka server's divided by the records. Run it through ``bench/run_tree.py`` to
compare two trees. Needs ``wrk`` and the Kafka server of ``scripts/servers``.

With ``--profile DIR``, py-spy (``pip install py-spy``) samples the main process and
each ingress worker at 200 Hz while wrk runs (``DIR/<process>-<round>.txt``, raw
collapsed stacks); ``bench/profile_parts.py`` turns them into µs per event per part.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench_brokers import _cleanup, manifests, raw_kafka, wait_http, wrk, wrk_accepted
from bench_pipeline import eventing_run, start, stop, subscriber_stats, wrk_missing

from eventing.workloads.replica import free_port

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], check=False, capture_output=True, text=True)
    out = found.stdout
    return [int(p) for p in out.split()]


def kafka_pid() -> int | None:
    found = subprocess.run(["pgrep", "-f", "kafka.Kafka"], check=False, capture_output=True,
                           text=True)  # fmt: skip
    out = found.stdout
    return int(out.split()[0]) if out.split() else None


def spy(pids: dict[str, int], seconds: int, into: Path | None, tag: str) -> list[Any]:
    """Sample the main process and the workers for ``seconds`` (none without ``into``):
    py-spy (Python frames; a thread waiting for a CPU counts as busy, so on a loaded
    machine it over-counts where threads get preempted) or, with EVENTING_BENCH_PERF=1,
    ``perf record`` (CPU time only; C frames, syscalls and the kernel)."""
    if into is None:
        return []
    into.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in pids.items():
        if name != "main" and not name.startswith("worker"):
            continue
        out = into / f"{name.replace(' ', '')}-{tag}"
        if os.environ.get("EVENTING_BENCH_PERF") == "1":
            command = ["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o",
                       f"{out}.perf", "--", "sleep", str(seconds)]  # fmt: skip
        else:
            binary = str(Path(sys.executable).with_name("py-spy"))
            command = [binary, "record", "--nonblocking", "-f", "raw", "-r", "200", "-d",
                       str(seconds), "-p", str(pid), "-o", f"{out}.txt"]  # fmt: skip
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))  # fmt: skip
    return procs


def class_round(
    seconds: int, connections: int, profile: Path | None = None, tag: str = "1"
) -> dict[str, float]:
    """CPU µs per delivered event by process, and the rate, for one class run."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="eventing-bench-kcpu-"))
    sub_port, port, admin = free_port(), free_port(), free_port()
    sub_url = f"http://127.0.0.1:{sub_port}"
    manifests(work, "kafka", name, sub_url)
    sub = start("bench/bench_servers.py", "lean", str(sub_port))
    system = None
    try:
        wait_http(f"{sub_url}/stats")
        system = start(*eventing_run(work, port, admin))
        wait_http(f"http://127.0.0.1:{admin}/readyz")
        time.sleep(3)  # the consumer group settles (as bench_brokers does)
        pids = {"main": system.pid, "subscriber": sub.pid}
        for i, child in enumerate(children(system.pid)):
            pids[f"worker {i}"] = child
        server = kafka_pid()
        if server is not None:
            pids["kafka server"] = server
        urllib.request.urlopen(urllib.request.Request(f"{sub_url}/reset", method="POST"))
        before = {k: cpu(p) for k, p in pids.items()}
        started = time.time()
        load = wrk(f"http://127.0.0.1:{port}/default/default", seconds, connections)
        spies = spy(pids, max(1, seconds - 2), profile, tag)
        accepted = wrk_accepted(load)
        for proc in spies:
            proc.wait(timeout=60)
        deadline = time.monotonic() + 120
        while subscriber_stats(sub_url)["count"] < accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        after = {k: cpu(p) for k, p in pids.items()}
        stats = subscriber_stats(sub_url)
        n = max(1, stats["count"])
        out = {k: 1e6 * (after[k] - before[k]) / n for k in pids}
        out["rate"] = min(accepted / seconds, n / max(1e-9, stats["last"] - started))
        if profile is not None:  # for profile_parts.py: samples -> µs per event
            (profile / f"rate-{tag}.txt").write_text(f"{out['rate']}\n")
        return out
    finally:
        if system is not None:
            stop(system)
        stop(sub)
        shutil.rmtree(work, ignore_errors=True)
        asyncio.run(_cleanup("kafka", name))


def raw_round(records: int) -> dict[str, float]:
    """CPU µs per record of the raw client loop (this process) and the Kafka server."""
    server = kafka_pid()
    own, theirs = time.process_time(), cpu(server) if server else 0.0
    rate = asyncio.run(raw_kafka(records))
    own, theirs = time.process_time() - own, (cpu(server) if server else 0.0) - theirs
    return {"raw client": 1e6 * own / records, "kafka server": 1e6 * theirs / records,
            "rate": rate}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--raw-events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks into this directory")
    args = parser.parse_args()
    if wrk_missing():
        return 2
    classes: list[dict[str, float]] = []
    raws: list[dict[str, float]] = []
    for round_ in range(args.rounds):
        load = os.getloadavg()[0]
        classes.append(class_round(args.seconds, args.connections, args.profile, str(round_ + 1)))
        raws.append(raw_round(args.raw_events))
        print(f"round {round_ + 1} done, load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\nCPU µs per event (median of {args.rounds} rounds; every round in brackets)\n")
    for title, rows in (("Kafka class", classes), ("raw aiokafka loop", raws)):
        print(title)
        for key in rows[0]:
            values = [r.get(key, 0.0) for r in rows]
            each = ", ".join(f"{v:,.1f}" for v in values)
            unit = "ev/s" if key == "rate" else "µs/event"
            print(f"  {key:<16} {statistics.median(values):>10,.1f} {unit:<9} [{each}]")
    ours = [sum(v for k, v in r.items() if k not in ("rate", "kafka server")) for r in classes]
    raw = [r["raw client"] for r in raws]
    print(f"\nour processes together {statistics.median(ours):.1f} µs/event against the raw "
          f"client's {statistics.median(raw):.1f} (ratio of medians "
          f"{statistics.median(raw) / statistics.median(ours):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
