"""Jobs-per-event benchmark on the test control plane (not a test): how long from an
event to its finished Job's result through :class:`eventing.kube.jobs.KubeJobRunner`,
next to the same Job created directly through the API and polled every 0.1 s in the
same run (the baseline: our overhead is the difference).

    EVENTING_TEST_KUBECONFIG=.servers/kubernetes/admin.kubeconfig \\
        .venv/bin/python bench/bench_k8s_jobs.py [--events 20] [--parallelism 5]

Two shapes: one event at a time (latency, median of ``--events``), and ``--events``
events at once with ``parallelism`` Jobs at most (wall time for all). kwok ends each
Job's pod at once (no annotation), so what is measured is the Job controller,
scheduler and kwok plus the runner's API calls and its 0.5 s poll, not containers.
The runner's API calls are counted per event.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventing.events import Event
from eventing.kube import jobspec
from eventing.kube.api import KubeApi
from eventing.kube.jobs import KubeJobRunner
from tests.support.k8s import Cluster, kubeconfig_path

TEMPLATE: dict[str, Any] = {
    "template": {"spec": {"containers": [{"name": "job", "image": "example.com/job:1"}]}}
}


def event(i: int) -> Event:
    return Event(
        {"specversion": "1.0", "id": f"{uuid.uuid4()}", "source": "/bench", "type": f"t{i}"},
        b"{}",
    )


class CountingApi(KubeApi):
    calls = 0

    def _call(self, method: Any, *args: Any, _raw: bool = False, **kwargs: Any) -> Any:
        CountingApi.calls += 1
        return super()._call(method, *args, _raw=_raw, **kwargs)


async def ours(runner: KubeJobRunner, events: list[Event], parallel: bool) -> list[float]:
    async def one(e: Event) -> float:
        start = time.monotonic()
        result = await runner.run(e, 60)
        assert result.state == "succeeded", result
        return time.monotonic() - start

    if parallel:
        return list(await asyncio.gather(*(one(e) for e in events)))
    return [await one(e) for e in events]


async def baseline(
    api: KubeApi, ns: str, events: list[Event], parallelism: int, parallel: bool
) -> list[float]:
    """Create the same Job (and Secret) directly; poll its conditions every 0.1 s."""
    slots = asyncio.Semaphore(parallelism)

    async def one(i: int, e: Event) -> float:
        start = time.monotonic()  # as for ours: waiting for a slot counts
        async with slots:
            name = f"base-{uuid.uuid4().hex[:12]}"
            body = jobspec.build_job(
                {},
                TEMPLATE,
                name=name,
                workload_name="base",
                event=e,
                ehash="b",
                attempt=i,
                timeout=60,
            )
            created = await asyncio.to_thread(api.create_job, ns, body)
            secret = jobspec.build_secret(created, created["metadata"]["uid"], b"{}")
            await asyncio.to_thread(api.create_secret, ns, secret)
            while True:
                jobs = await asyncio.to_thread(api.list_jobs, ns, "eventing.local/workload=base")
                job = next(j for j in jobs if j["metadata"]["name"] == name)
                if jobspec.job_state(job) != "running":
                    return time.monotonic() - start
                await asyncio.sleep(0.1)

    if parallel:
        return list(await asyncio.gather(*(one(i, e) for i, e in enumerate(events))))
    return [await one(i, e) for i, e in enumerate(events)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=5)
    args = parser.parse_args()
    cluster = Cluster.connect(kubeconfig_path())
    api = CountingApi.connect(str(kubeconfig_path()))
    with cluster.namespace("bench-jobs") as ns:
        rows = []
        for parallel in (False, True):
            runner = KubeJobRunner(
                f"{ns}/bench", {}, TEMPLATE, lambda: api, parallelism=args.parallelism, keep=1000
            )
            events = [event(i) for i in range(args.events)]
            CountingApi.calls = 0
            start = time.monotonic()
            mine = await ours(runner, events, parallel)
            wall_ours = time.monotonic() - start
            calls = CountingApi.calls / args.events
            start = time.monotonic()
            base = await baseline(
                api, ns, [event(i) for i in range(args.events)], args.parallelism, parallel
            )
            wall_base = time.monotonic() - start
            shape = (
                f"{args.events} at once, parallelism {args.parallelism}"
                if parallel
                else "one at a time"
            )
            rows.append(
                (
                    shape,
                    statistics.median(mine),
                    statistics.median(base),
                    wall_ours,
                    wall_base,
                    calls,
                )
            )
    api.close()
    head = ("shape", "median ours", "median base", "wall ours", "wall base", "ratio", "calls/ev")
    line = "{:<34} {:>11} {:>11} {:>9} {:>9} {:>6} {:>8}"
    print(line.format(*head))
    for shape, m, b, wo, wb, calls in rows:
        ratio = wo / wb
        print(
            line.format(
                shape,
                f"{m:.2f}s",
                f"{b:.2f}s",
                f"{wo:.1f}s",
                f"{wb:.1f}s",
                f"{ratio:.2f}",
                f"{calls:.1f}",
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
