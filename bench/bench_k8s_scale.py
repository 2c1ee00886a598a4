"""Scale-out benchmark on the test control plane (not a test): time from a burst that
needs N replicas (default 500) to N Ready pods on kwok fake nodes, through eventing's
Kubernetes actuator, next to the same Deployment scaled by a plain ``kubectl scale`` in
the same run (the baseline: our overhead is the difference; runs alternate which goes
first), plus the API calls the actuator made for the decision.

    EVENTING_TEST_KUBECONFIG=.servers/kubernetes/admin.kubeconfig \\
        .venv/bin/python bench/bench_k8s_scale.py [--replicas 500] [--runs 2]

The "burst" is the scaler's decision: ``scale_to(N)`` is what the scaler calls when a
backlog needs N replicas, and time starts there. Readiness is read from the API server
(pods with condition Ready), the same way for both: a watcher lists the pods every
0.1 s. kwok makes a bound pod Ready at once, so what is measured is the control plane
(ReplicaSet controller, scheduler, kwok) plus our actuator's latency, not containers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventing.kube.actuator import KubeActuator, ScaleTarget
from eventing.kube.api import KubeApi
from tests.support.k8s import Cluster, deployment_manifest, kubeconfig_path


def ready_count(cluster: Cluster, ns: str) -> int:
    return len(cluster.ready_pods(ns, "app=web"))


async def wait_ready(cluster: Cluster, ns: str, n: int, timeout: float = 600) -> float:
    start = time.monotonic()
    # Polling the API server is the measurement itself (there is nothing to await).
    while await asyncio.to_thread(ready_count, cluster, ns) < n:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"fewer than {n} ready pods after {timeout:.0f}s")
        await asyncio.sleep(0.1)
    return time.monotonic()


async def wait_gone(cluster: Cluster, ns: str) -> None:
    def pods() -> int:
        return len(cluster.core.list_namespaced_pod(ns, label_selector="app=web").items)

    while await asyncio.to_thread(pods):  # noqa: ASYNC110 (the API server is polled)
        await asyncio.sleep(0.2)


async def kubectl_run(cluster: Cluster, ns: str, n: int) -> float:
    start = time.monotonic()
    await asyncio.to_thread(cluster.kubectl, "scale", "-n", ns, "deployment/web", f"--replicas={n}")
    done = await wait_ready(cluster, ns, n)
    await asyncio.to_thread(cluster.kubectl, "scale", "-n", ns, "deployment/web", "--replicas=0")
    await wait_gone(cluster, ns)
    return done - start


async def actuator_run(cluster: Cluster, ns: str, n: int) -> tuple[float, int, int, float]:
    api = KubeApi.connect(str(cluster.kubeconfig))
    actuator = KubeActuator(lambda: api, ScaleTarget("apps/v1", "Deployment", "web", ns))
    await actuator.start()
    try:
        while actuator.observed_at is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        calls_before = actuator.api_calls
        start = time.monotonic()
        await actuator.scale_to(n)
        done = await wait_ready(cluster, ns, n)
        while actuator.count("ready") < n:  # noqa: ASYNC110 (when the actuator saw them all)
            await asyncio.sleep(0.05)
        seen = time.monotonic()
        calls = actuator.api_calls - calls_before
        patches = actuator.patches
        await actuator.scale_to(0)
        await wait_gone(cluster, ns)
    finally:
        await actuator.close()
        api.close()
    return done - start, calls, patches, seen - start


async def main(replicas: int, runs: int) -> None:
    cluster = Cluster.connect(kubeconfig_path())
    rows: list[dict[str, Any]] = []
    with cluster.namespace("bench") as ns:
        await asyncio.to_thread(
            cluster.apps.create_namespaced_deployment, ns, deployment_manifest("web", 0)
        )
        for run in range(runs):
            # Alternate which goes first: the control plane is still settling (garbage
            # collection, endpoint slices) after the previous scale-in.
            if run % 2:
                ours, calls, patches, seen = await actuator_run(cluster, ns, replicas)
                base = await kubectl_run(cluster, ns, replicas)
            else:
                base = await kubectl_run(cluster, ns, replicas)
                ours, calls, patches, seen = await actuator_run(cluster, ns, replicas)
            print(f"run {run + 1}: kubectl {base:.2f} s, actuator {ours:.2f} s", flush=True)
            rows.append(
                {"kubectl": base, "ours": ours, "seen": seen, "calls": calls, "patches": patches}
            )
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"\n{replicas} replicas from zero to Ready on kwok nodes, {runs} runs (seconds)\n")
    print(f"{'measure':<58} {'median':>8}")
    print("-" * 68)
    print(f"{'kubectl scale -> N Ready pods (baseline)':<58} {med['kubectl']:>8.2f}")
    print(f"{'actuator scale_to(N) -> N Ready pods':<58} {med['ours']:>8.2f}")
    print(f"{'actuator scale_to(N) -> actuator counts N ready':<58} {med['seen']:>8.2f}")
    print(f"{'API calls by the actuator during the ramp':<58} {med['calls']:>8.0f}")
    print(f"{'of which PATCH /scale (one decision)':<58} {med['patches']:>8.0f}")
    print(f"\nratio actuator / kubectl scale: {med['ours'] / med['kubectl']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.replicas, args.runs))
