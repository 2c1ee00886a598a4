"""Activation latency benchmark (not a test): an event accepted for a workload at zero
replicas -> scale decision -> replica ready -> event delivered, minus the replica
process's own start-up time, over repeated cold starts.

    .venv/bin/python bench/bench_activation.py [--runs 15]

The replica is a minimal asyncio HTTP server that records when its process started
(first line of the script, before any import beyond ``time``) and when it began
listening, and reports both with every event it receives. The workload uses the
default readiness settings (a TCP connect probe).

What is ours: accepted -> the replica's spawn begins (the scale decision and the
scheduling), the spawn itself (until the process and its pipes exist), and replica
listening -> the event delivered to it (readiness detection, hand-over, the connection
and the request). What is not: the interpreter's start up to the script's first line
and the script's own start up to listening. The older, pessimistic figure
"delivered - own start", which counts the interpreter's start against us, is printed
too. The baseline measured in the same run is a bare ``subprocess.Popen`` launch of
the same replica (it reports its own first line and listening times; nothing probes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from eventing.workloads.replica import free_port, replica_environment

REPLICA = """import time
T0 = time.time()
import asyncio, json, os, urllib.request
REPORT = os.environ["REPORT_URL"]
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.b = t, b""
    def data_received(self, d):
        self.b += d
        if b"\\r\\n\\r\\n" not in self.b: return
        head, _, rest = self.b.partition(b"\\r\\n\\r\\n")
        n = 0
        for line in head.split(b"\\r\\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length": n = int(v)
        if len(rest) < n: return
        if head.startswith(b"POST"):
            body = json.dumps({"t0": T0, "listening": LISTEN, "got": time.time()}).encode()
            urllib.request.urlopen(urllib.request.Request(REPORT, data=body), timeout=5)
        self.t.write(b"HTTP/1.1 202 Accepted\\r\\nContent-Length: 0\\r\\n\\r\\n")
        self.b = b""
async def main():
    global LISTEN
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(P, "127.0.0.1", int(os.environ["PORT"]))
    LISTEN = time.time()
    if os.environ.get("ANNOUNCE"):
        body = json.dumps({"t0": T0, "listening": LISTEN}).encode()
        urllib.request.urlopen(urllib.request.Request(REPORT, data=body), timeout=5)
    await srv.serve_forever()
LISTEN = 0.0
asyncio.run(main())
"""


def manifests(script: Path, report: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: w}}
spec:
  command: ["{sys.executable}", "{script}"]
  env: [{{name: REPORT_URL, value: "{report}"}}]
  readiness: {{periodSeconds: 0.002}}
  scaling: {{maxReplicas: 1, keepAlive: fixed, cooldownPeriod: 0,
             stabilizationWindowSeconds: 0}}
  terminationGracePeriodSeconds: 1
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: t}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: w}}}}
"""


async def bare_launch(
    script: Path, report: str, reports: asyncio.Queue[dict[str, float]]
) -> dict[str, float]:
    """A bare launch of the same replica (``subprocess.Popen``, which vforks), with the
    environment a replica gets: seconds from the launch to its first line (the
    interpreter's own start) and to listening, as the replica itself reports them (no
    probing, which would take CPU from the starting process)."""
    port = free_port()
    env = replica_environment(os.environ, {"REPORT_URL": report, "ANNOUNCE": "1"}, port, "w")
    started = time.time()
    proc = subprocess.Popen([sys.executable, str(script)], env=env)  # noqa: ASYNC220 (vfork: returns once it execs)
    got = await asyncio.wait_for(reports.get(), 30)
    proc.kill()
    await asyncio.to_thread(proc.wait)
    return {"first_line": got["t0"] - started, "listening": got["listening"] - started}


def _time_replica_start(out: list[tuple[float, float]]) -> None:
    """Record when each replica's spawn begins (wall clock) and how long it takes.
    Wraps ``Replica.start`` for measuring only; what it does is unchanged."""
    from eventing.workloads.replica import Replica

    original = Replica.start

    async def start(self: Replica) -> None:
        began, t = time.time(), time.perf_counter()
        await original(self)
        out.append((began, time.perf_counter() - t))

    Replica.start = start  # type: ignore[method-assign]


async def run(runs: int) -> int:
    from eventing.app.runtime import RuntimeSettings, start, stop
    from eventing.app.system import StoreSettings

    reports: asyncio.Queue[dict[str, float]] = asyncio.Queue()

    async def report(request: web.Request) -> web.Response:
        await reports.put(json.loads(await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/", report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    report_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", report_port).start()
    report_url = f"http://127.0.0.1:{report_port}/"

    work = Path(tempfile.mkdtemp(prefix="eventing-activation-"))
    script = work / "replica.py"
    script.write_text(REPLICA)
    (work / "m").mkdir()
    (work / "m" / "a.yaml").write_text(manifests(script, report_url))
    settings = RuntimeSettings(port=0, admin_port=0, store=StoreSettings(data_dir=work / "data"))
    running = await start(work / "m", settings)
    spawns: list[tuple[float, float]] = []
    _time_replica_start(spawns)
    workload = running.system.workloads.items["default/w"]  # type: ignore[union-attr]
    rows: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(runs):
                while workload.pool.replicas:  # back at zero  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                spawns.clear()
                decided: list[float] = []
                workload.scaler.on_decision = lambda d, prev, out=decided: out.append(time.time())
                headers = {
                    "ce-specversion": "1.0",
                    "ce-id": f"a{n}",
                    "ce-source": "/b",
                    "ce-type": "t",
                }
                sent = time.time()
                async with http.post(
                    f"{running.ingress_url}/default/default", data=b"", headers=headers
                ) as r:
                    assert r.status == 202
                    accepted = time.time()
                got = await asyncio.wait_for(reports.get(), 30)
                own = got["listening"] - got["t0"]
                rows.append(
                    {
                        "decision": decided[0] - sent if decided else float("nan"),
                        "delivered": got["got"] - accepted,
                        "own": own,
                        "overhead": got["got"] - accepted - own,
                        "to_spawn": spawns[0][0] - accepted,
                        "spawn": spawns[0][1],
                        "interpreter": got["t0"] - spawns[0][0] - spawns[0][1],
                        "after_listening": got["got"] - got["listening"],
                        "ours": spawns[0][0]
                        - accepted
                        + spawns[0][1]
                        + got["got"]
                        - got["listening"],
                    }
                )
                bare.append(await bare_launch(script, report_url, reports))
    finally:
        await stop(running, settings)
        await runner.cleanup()

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1000

    def p90(values: list[float]) -> float:
        return sorted(values)[int(0.9 * (len(values) - 1))] * 1000

    print(f"\nactivation from zero replicas, {runs} cold starts (milliseconds)\n")
    print(f"{'measure':<60} {'median':>8} {'p90':>8}")
    print("-" * 78)
    table = [
        ("event sent -> scale decision (before the 202 returns)", [r["decision"] for r in rows]),
        ("accepted (202) -> delivered to the new replica", [r["delivered"] for r in rows]),
        ("  accepted -> the replica's spawn begins", [r["to_spawn"] for r in rows]),
        ("  the spawn (until the process and its pipes exist)", [r["spawn"] for r in rows]),
        (
            "  spawned -> replica's first line (the interpreter's start)",
            [r["interpreter"] for r in rows],
        ),
        ("  replica's first line -> listening (its own start)", [r["own"] for r in rows]),
        ("  replica listening -> event delivered to it", [r["after_listening"] for r in rows]),
        ("ours: to spawn + spawn + listening -> delivered", [r["ours"] for r in rows]),
        ("older measure: delivered - (first line -> listening)", [r["overhead"] for r in rows]),
        (
            "baseline: bare launch -> first line (interpreter start)",
            [b["first_line"] for b in bare],
        ),
        ("baseline: bare launch -> listening", [b["listening"] for b in bare]),
    ]
    for label, values in table:
        print(f"{label:<60} {med(values):>8.1f} {p90(values):>8.1f}")
    ratio = med([r["delivered"] for r in rows]) / med([b["listening"] for b in bare])
    print(
        f"\nratio accepted->delivered / bare launch->listening: {ratio:.2f} "
        "(1.00 would be a launch with no overhead at all); goal: ours <= 10 ms"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(run(args.runs))


if __name__ == "__main__":
    sys.exit(main())
