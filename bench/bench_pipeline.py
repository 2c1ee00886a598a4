"""Pipeline benchmark (not a test): events/s through ingress -> one trigger -> a local
HTTP subscriber, against a bare aiohttp POST handler and the fastest bare Python server
we could build (uvloop + httptools, the ``bench`` extra) hit by the same load
generator in the same run; then p50/p99 latency at half the sustained rate, and the rate with
batched ingress (100 events per request).

    .venv/bin/python bench/bench_pipeline.py [--seconds 10] [--connections 64]

Needs ``wrk`` (Debian package ``wrk``) as the load generator: it is written in C, so
the generator costs the machine as little as possible and the same for both sides.
Every server runs as its own process, as in production. Payload: 1 KiB of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eventing.workloads.replica import free_port

try:
    import httptools  # noqa: F401  (the second baseline's parser: the bench extra)

    HAVE_HTTPTOOLS = True
except ImportError:
    HAVE_HTTPTOOLS = False

ROOT = Path(os.environ.get("EVENTING_BENCH_TREE") or Path(__file__).resolve().parents[1])
"""Where the processes this starts run (and so whose ``eventing`` they import): the
tree ``bench/run_tree.py`` was given, else this checkout."""
PAYLOAD = json.dumps({"order": 1, "note": "x" * 990}, separators=(",", ":"))[:1024]

# A static request (no Lua callback per request), so the generator costs the 2-core
# machine as little as possible; every event carries the same id, which the broker does
# not deduplicate (ids matter to subscribers, not to throughput).
WRK_SINGLE = """
wrk.method = "POST"
wrk.headers["ce-specversion"] = "1.0"
wrk.headers["ce-id"] = "bench-1"
wrk.headers["ce-source"] = "/bench"
wrk.headers["ce-type"] = "bench.event"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [=[%s]=]
"""

WRK_BATCH = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/cloudevents-batch+json"
wrk.body = [=[%s]=]
"""


def wait_http(url: str, timeout: float = 30) -> None:
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
            time.sleep(0.05)


def eventing_run(
    work: Path, port: int, admin_port: int, *extra: str, data: str = "data", log: str = "WARNING"
) -> list[str]:
    """The ``eventing run`` arguments every bench starts the system with (manifests and
    data under ``work``), then ``extra``: one place, so the benches measure the same
    command."""
    return [
        "-m", "eventing.app.cli", "run", str(work),
        "--port", str(port), "--admin-port", str(admin_port),
        "--data-dir", str(work / data), "--log-level", log, *extra,
    ]  # fmt: skip


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wrk(url: str, script: str, seconds: int, connections: int) -> float:
    """Run wrk; return successful requests per second (non-2xx excluded)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    duration = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    return (total - (int(bad.group(1)) if bad else 0)) / duration


def subscriber_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as r:
        return json.load(r)  # type: ignore[no-any-return]


def wait_drained(admin: str, sub_url: str, expected: int, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = subscriber_stats(sub_url)
        if stats["count"] >= expected or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def manifests(directory: Path, sub_url: str) -> None:
    (directory / "bench.yaml").write_text(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: bench}}
spec:
  broker: default
  filters: [{{exact: {{type: bench.event}}}}]
  subscriber: {{uri: "{sub_url}/events"}}
""")


def pipeline_rate(
    ingress: str,
    admin: str,
    sub_url: str,
    script: str,
    seconds: int,
    connections: int,
    per_request: int,
    pids: dict[str, int] | None = None,
) -> tuple[float, float, dict[str, float]]:
    """(accepted events/s at ingress, delivered events/s end to end, CPU microseconds
    per delivered event of each process in ``pids``, over the phase and its drain)."""
    urllib.request.urlopen(urllib.request.Request(f"{sub_url}/reset", method="POST"))
    before = {role: cpu_seconds(pid) for role, pid in (pids or {}).items()}
    started = time.time()
    accepted_rate = wrk(ingress, script, seconds, connections) * per_request
    accepted = int(accepted_rate * seconds)
    stats = wait_drained(admin, sub_url, accepted)
    delivered_rate = stats["count"] / max(1e-9, stats["last"] - started)
    cpu = {
        role: (cpu_seconds(pid) - before[role]) / max(1, stats["count"]) * 1e6
        for role, pid in (pids or {}).items()
    }
    return accepted_rate, delivered_rate, cpu


def batched_phase(
    write_manifests: Callable[[Path, str], None],
    script: str,
    seconds: int,
    *,
    subscriber: str = "lean",
    extra: Sequence[str] = (),
    runner: Sequence[str] = (),
    workers: bool = False,
    prefix: str = "eventing-bench-",
    subscriber_cpu: bool = False,
    connections: int = 8,
) -> tuple[float, float, dict[str, float]]:
    """One batched-ingress phase (``wrk -c8`` unless ``connections`` says otherwise, 100
    events per request) through a fresh
    ``eventing run`` (``extra`` arguments; ``runner`` in front of it, e.g. ``run_tree.py
    TREE``) to the ``subscriber`` of ``bench_servers.py``, manifests written by
    ``write_manifests(work, subscriber_url)``: :func:`pipeline_rate`'s (accepted ev/s,
    delivered ev/s, CPU µs per delivered event) for the main process, and with
    ``workers`` for each ingress worker too (``worker N``), with ``subscriber_cpu`` for
    the subscriber (``subscriber``). Every process and file goes afterwards."""
    sub_port, port, admin_port = free_port(), free_port(), free_port()
    sub_url, admin = f"http://127.0.0.1:{sub_port}", f"http://127.0.0.1:{admin_port}"
    work = Path(tempfile.mkdtemp(prefix=prefix))
    write_manifests(work, sub_url)
    sub = start("bench/bench_servers.py", subscriber, str(sub_port))
    system = start(*runner, *eventing_run(work, port, admin_port, *extra))
    try:
        wait_http(f"{sub_url}/stats")
        wait_http(f"{admin}/healthz", timeout=120)
        pids = {"main": system.pid}
        if workers:
            for n, worker in enumerate(children(system.pid)):
                pids[f"worker {n}"] = worker
        if subscriber_cpu:
            pids["subscriber"] = sub.pid
        ingress = f"http://127.0.0.1:{port}/default/default"
        return pipeline_rate(ingress, admin, sub_url, script, seconds, connections, 100, pids)
    finally:
        stop(system)
        stop(sub)
        shutil.rmtree(work, ignore_errors=True)


def wrk_missing(what: str = "bench") -> bool:
    """True (after saying so on stderr) when ``wrk``, the load generator, is not
    installed: the caller exits with 2."""
    if shutil.which("wrk") is not None:
        return False
    print(f"{what}: needs wrk (apt-get install wrk)", file=sys.stderr)
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children's threads so far (from
    /proc; 10 ms ticks, fine over a phase of seconds)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text()
        found += [int(c) for c in text.split()]
    return found


async def paced_latency(ingress: str, sub_url: str, rate: float, seconds: float) -> list[float]:
    """Open-loop load at ``rate`` events/s from 32 senders over the project's lean
    client (so the generator's own cost stays small); each event carries its send time
    (``ce-sentat``) and the subscriber records when it arrived."""
    from sinks.httpclient import Pool, Target

    reset = urllib.request.Request(f"{sub_url}/reset", method="POST")
    urllib.request.urlopen(reset)  # noqa: ASYNC210 - before the load starts
    total = int(rate * seconds)
    pool, target = Pool(), Target.parse(ingress)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.1
    numbers = iter(range(total))

    async def sender() -> None:
        for n in numbers:
            delay = begin + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            headers = [
                ("ce-specversion", "1.0"),
                ("ce-id", f"lat-{n}"),
                ("ce-source", "/bench"),
                ("ce-type", "bench.event"),
                ("Content-Type", "application/json"),
                ("ce-sentat", repr(time.time())),
            ]
            await pool.post(target, headers, PAYLOAD.encode(), 30)

    await asyncio.gather(*(sender() for _ in range(32)))
    pool.close()
    deadline = time.monotonic() + 60
    while subscriber_stats(sub_url)["count"] < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return list(subscriber_stats(sub_url)["latencies"])


def _run_uvloop(coro: Any) -> list[float]:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result: list[float] = asyncio.run(coro)
    return result


def baseline(kind: str, script: str, seconds: int, connections: int) -> float:
    """Requests/s of one of the baseline servers of bench_servers.py under wrk."""
    port = free_port()
    server = start("bench/bench_servers.py", kind, str(port))
    wait_http(f"http://127.0.0.1:{port}/")
    try:
        return wrk(f"http://127.0.0.1:{port}/", script, seconds, connections)
    finally:
        stop(server)


STAGES_ENV = "EVENTING_STAGE_TIMES"  # eventing.stages.ENV
# Data path order: delivery starts at the commit, the 202 waits for the fsync.
STAGE_ORDER = [
    "ingress received",
    "main has it (IPC)",
    "store writer took it",
    "store committed",
    "dispatch",
    "subscriber answered",
    "store fsynced",
    "stored (commit and fsync)",
    "ingress answers 202",
]


def read_stages(directory: Path) -> dict[str, list[float]]:
    """Samples per stage from every process's file (see eventing/stages.py); the loop
    lag kept per process role."""
    merged: dict[str, list[float]] = {}
    for path in sorted(directory.glob("*.json")):
        role = path.name.split("-", 1)[0]
        for stage, values in json.loads(path.read_text()).items():
            name = f"{role} {stage}" if stage == "loop lag" or stage.startswith("gc ") else stage
            merged.setdefault(name, []).extend(values)
    return merged


def print_stages(samples: dict[str, list[float]], subscriber: list[float]) -> None:
    print("\nlatency phase, time since the sender stamped ce-sentat, by stage (ms)\n")
    print(f"{'stage':<40} {'n':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'p99.9':>7} {'max':>7}")
    print("-" * 84)
    rows = [(s, samples.get(s, [])) for s in STAGE_ORDER]
    rows.append(("subscriber has it", subscriber))
    rows += [(s, v) for s, v in sorted(samples.items()) if "loop lag" in s or " gc " in s]
    for name, values in rows:
        cells = " ".join(f"{percentile(values, p) * 1000:>7.2f}" for p in (50, 90, 99, 99.9, 100))
        print(f"{name:<40} {len(values):>7} {cells}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--fsync", choices=["full", "normal"], default="full")
    parser.add_argument("--ingress-workers", default="auto")
    parser.add_argument(
        "--subscriber",
        choices=["lean", "aiohttp"],
        default="lean",
        help="lean: a raw asyncio responder (default); aiohttp: a typical aiohttp service",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="record and print where the latency phase's events spend their time "
        "(EVENTING_STAGE_TIMES; a 1 ms loop-lag timer runs in each process)",
    )
    parser.add_argument(
        "--latency-at",
        type=float,
        default=0.0,
        metavar="EV_PER_S",
        help="only the latency phase, at this rate (no baselines, no throughput phases)",
    )
    args = parser.parse_args()
    if wrk_missing():
        return 2
    single = WRK_SINGLE % PAYLOAD
    batch_body = json.dumps(
        [
            {
                "specversion": "1.0",
                "id": f"b-{i}",
                "source": "/bench",
                "type": "bench.event",
                "datacontenttype": "application/json",
                "data": json.loads(PAYLOAD),
            }
            for i in range(100)
        ]
    )
    batch = WRK_BATCH % batch_body

    bare_rate = 0.0 if args.latency_at else baseline("bare", single, args.seconds, args.connections)
    fastest_rate = (
        baseline("fastest", single, args.seconds, args.connections)
        if HAVE_HTTPTOOLS and not args.latency_at
        else None
    )

    sub_port, port, admin_port = free_port(), free_port(), free_port()
    sub_url = f"http://127.0.0.1:{sub_port}"
    ingress = f"http://127.0.0.1:{port}/default/default"
    admin = f"http://127.0.0.1:{admin_port}"
    work = Path(tempfile.mkdtemp(prefix="eventing-bench-"))
    manifests(work, sub_url)
    stage_dir = work / "stages"
    stage_dir.mkdir()
    env = {**os.environ, STAGES_ENV: str(stage_dir)} if args.stages else None
    sub = start(
        "bench/bench_servers.py",
        "lean" if args.subscriber == "lean" else "subscriber",
        str(sub_port),
    )
    system = start(
        *eventing_run(
            work, port, admin_port, "--fsync", args.fsync, "--ingress-workers", args.ingress_workers
        ),
        env=env,
    )
    latencies: list[float] = []
    try:
        wait_http(f"{sub_url}/stats")
        wait_http(f"{admin}/healthz")
        if args.latency_at:
            latencies = _run_uvloop(paced_latency(ingress, sub_url, args.latency_at, args.seconds))
            print(
                f"\nlatency at {args.latency_at:,.0f} ev/s: p50 "
                f"{percentile(latencies, 50) * 1000:.1f} ms, p99 "
                f"{percentile(latencies, 99) * 1000:.1f} ms ({len(latencies)} samples)"
            )
    finally:
        if args.latency_at:
            stop(system)
            stop(sub)
            if args.stages:
                print_stages(read_stages(stage_dir), latencies)
            shutil.rmtree(work, ignore_errors=True)
    if args.latency_at:
        return 0
    try:
        pids = {"main": system.pid, "subscriber": sub.pid}
        for n, worker in enumerate(children(system.pid)):
            pids[f"worker {n}"] = worker
        accepted, delivered, cpu = pipeline_rate(
            ingress, admin, sub_url, single, args.seconds, args.connections, 1, pids
        )
        sustained = min(accepted, delivered)
        latencies = _run_uvloop(paced_latency(ingress, sub_url, sustained / 2, args.seconds))
        b_accepted, b_delivered, b_cpu = pipeline_rate(
            ingress, admin, sub_url, batch, args.seconds, max(4, args.connections // 8), 100, pids
        )
    finally:
        stop(system)
        stop(sub)
        stage_samples = read_stages(stage_dir)
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("bare aiohttp POST handler (baseline)", bare_rate, "-", "-"),
        ("bare uvloop + httptools server (second baseline)", fastest_rate, "-", "-"),
        ("ingress -> trigger -> subscriber, accepted", accepted, "-", "-"),
        ("ingress -> trigger -> subscriber, delivered", delivered, "-", "-"),
        (
            f"latency at {sustained / 2:,.0f} ev/s (half of sustained)",
            None,
            f"{percentile(latencies, 50) * 1000:.1f} ms",
            f"{percentile(latencies, 99) * 1000:.1f} ms",
        ),
        ("batched ingress (100/request), accepted", b_accepted, "-", "-"),
        ("batched ingress (100/request), delivered", b_delivered, "-", "-"),
    ]
    print(
        f"\n1 KiB JSON events, wrk -t1 -c{args.connections} -d{args.seconds}s, "
        f"fsync={args.fsync}, subscriber={args.subscriber}, {os.cpu_count()} CPUs\n"
    )
    print(f"{'path':<52} {'events/s':>10} {'p50':>9} {'p99':>9}")
    print("-" * 84)
    for name, rate, p50, p99 in rows:
        shown = f"{rate:,.0f}" if rate is not None else "-"
        print(f"{name:<52} {shown:>10} {p50:>9} {p99:>9}")
    print(
        f"\nratio sustained end-to-end / bare handler: {sustained / bare_rate:.2f} "
        "(physical ceiling about 0.5: two HTTP hops plus storage; goal >= 0.5)"
    )
    print(f"ratio batched delivered / bare handler: {b_delivered / bare_rate:.2f} (goal >= 0.9)")
    if fastest_rate is not None:
        print(
            f"against the uvloop + httptools server: sustained {sustained / fastest_rate:.2f}, "
            f"batched {b_delivered / fastest_rate:.2f}; aiohttp handler / it: "
            f"{bare_rate / fastest_rate:.2f}"
        )
    else:
        print("second baseline skipped: pip install -e '.[bench]' (httptools)")
    print(
        f"latency samples: {len(latencies)}, median {statistics.median(latencies) * 1000:.1f} ms"
        if latencies
        else "no latency samples"
    )
    print("\nCPU per delivered event (microseconds, the phase and its drain):")
    for role in cpu:
        print(f"  {role:<12} single {cpu[role]:>7.1f}   batched {b_cpu[role]:>7.1f}")
    if args.stages:
        print_stages(stage_samples, latencies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
