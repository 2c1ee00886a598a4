"""Activation latency benchmark (not a test): an event accepted for a workload at zero
replicas -> scale decision -> replica ready -> event delivered, minus the replica
process's own start-up time, over repeated cold starts.

    .venv/bin/python bench/bench_activation.py [--runs 15]

The replica is a minimal asyncio HTTP server that records when its process started
(first line of the script, before any import beyond ``time``) and when it began
listening, and reports both with every event it receives. Our overhead is
"accepted -> delivered" minus "process started -> listening"; the interpreter's own
launch before its first line counts against us (conservative). The baseline measured
in the same run is a bare subprocess launch of the same replica up to listening,
which is the floor any local activation has to pay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from eventing.workloads.replica import free_port

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


async def bare_launch(script: Path, report: str) -> float:
    """Seconds from launching the replica to its port accepting connections."""
    port = free_port()
    started = time.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env={"PORT": str(port), "REPORT_URL": report}
    )
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.001)
    took = time.time() - started
    proc.kill()
    await proc.wait()
    return took


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
    workload = running.system.workloads.items["default/w"]  # type: ignore[union-attr]
    rows: list[dict[str, float]] = []
    bare: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(runs):
                while workload.pool.replicas:  # back at zero  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
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
                    }
                )
                bare.append(await bare_launch(script, report_url))
    finally:
        await stop(running, settings)
        await runner.cleanup()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows) * 1000

    def p90(values: list[float]) -> float:
        return sorted(values)[int(0.9 * (len(values) - 1))] * 1000

    print(f"\nactivation from zero replicas, {runs} cold starts (milliseconds)\n")
    print(f"{'measure':<52} {'median':>8} {'p90':>8}")
    print("-" * 70)
    for label, key in [
        ("event sent -> scale decision (before the 202 returns)", "decision"),
        ("accepted (202) -> delivered to the new replica", "delivered"),
        ("  of which the replica's own start (t0 -> listening)", "own"),
        ("  our overhead (delivered - own start)", "overhead"),
    ]:
        print(f"{label:<52} {med(key):>8.1f} {p90([r[key] for r in rows]):>8.1f}")
    print(
        f"{'baseline: bare launch of the replica to listening':<52} "
        f"{statistics.median(bare) * 1000:>8.1f} {p90(bare):>8.1f}"
    )
    ratio = med("delivered") / (statistics.median(bare) * 1000)
    print(
        f"\nratio accepted->delivered / bare launch: {ratio:.2f} "
        f"(1.00 would be a launch with no overhead at all); goal: overhead < 50 ms"
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
