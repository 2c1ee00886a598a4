"""Workloads with real subprocess replicas: a burst scales a workload at zero out,
every event is delivered, the workload returns to zero when idle, a later event
cold-starts it again; scale-in drains what a replica holds before stopping it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

from eventing.app.runtime import Running
from eventing.workloads.decisionlog import FILE_NAME, read_decisions
from eventing.workloads.guardian import Guardian
from eventing.workloads.pool import ReplicaPool
from eventing.workloads.replica import ReplicaConfig
from tests.conftest import SystemFactory
from tests.support.mesh import wait_until
from tests.support.subscriber import RecordingSubscriber

REPLICA = str(Path(__file__).resolve().parents[1] / "support" / "replica_app.py")
KEY = "default/worker"


def manifests(report_url: str, work: float = 0.3, max_replicas: int = 6) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: worker}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  env:
    - {{name: WORK_SECONDS, value: "{work}"}}
    - {{name: REPORT_URL, value: "{report_url}"}}
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling:
    maxReplicas: {max_replicas}
    concurrencyPerReplica: 1
    keepAlive: fixed
    cooldownPeriod: 1
    stabilizationWindowSeconds: 1
    drainHorizonSeconds: 2
  terminationGracePeriodSeconds: 10
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: jobs}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: worker}}}}
"""


async def send(running: Running, ids: list[str]) -> None:
    async with aiohttp.ClientSession() as http:
        for event_id in ids:
            headers = {
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": "/test",
                "ce-type": "job",
            }
            async with http.post(
                f"{running.ingress_url}/default/default", data=b"{}", headers=headers
            ) as r:
                assert r.status == 202


def reported(subscriber: RecordingSubscriber) -> list[str]:
    return [json.loads(r.body)["id"] for r in subscriber.received if r.path == "/report"]


async def decisions(running: Running, data_dir: Path) -> list[dict[str, object]]:
    """The decisions file (and its rotated one), once every decision made so far is in."""
    assert running.system.workloads is not None
    await running.system.workloads.decision_log.flush()
    return read_decisions(data_dir / FILE_NAME)


async def test_burst_scales_out_drains_goes_to_zero_and_cold_starts_again(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    running = await system(manifests(f"{subscriber.url}/report"), data_dir=data)
    workload = running.system.workloads.items[KEY]  # type: ignore[union-attr]
    burst = [f"burst-{i}" for i in range(20)]
    await send(running, burst)
    await subscriber.wait_for(lambda _: set(burst) <= set(reported(subscriber)), timeout=60)
    assert max(int(d["to"]) for d in (await decisions(running, data))) > 1  # type: ignore[call-overload]
    await wait_until(
        lambda: workload.pool.desired == 0 and not workload.pool.replicas, 60, "scale to zero"
    )
    assert running.system.triggers["default/jobs"].subscription.cached_backlog() == 0

    await send(running, ["later"])
    await subscriber.wait_for(lambda _: "later" in reported(subscriber), timeout=60)
    ups = [d for d in (await decisions(running, data)) if d["from"] == 0]
    assert len(ups) == 2  # the burst activated it, and the later event cold-started it
    stats = running.system.triggers["default/jobs"].dispatcher.stats
    await wait_until(
        lambda: stats.delivered == 21, 20, "21 deliveries"
    )  # the replica reports before it answers
    assert stats.retried == 0  # waiting for a replica burnt no retry
    assert stats.failed == 0


async def test_scale_in_drains_in_flight_events(
    subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    config = ReplicaConfig(
        workload="drain",
        command=[sys.executable, REPLICA],
        env={"WORK_SECONDS": "1.0", "REPORT_URL": f"{subscriber.url}/report"},
        grace_period=20,
    )
    guardian = Guardian()
    await guardian.start()
    pool = ReplicaPool(config, concurrency=1, guardian=guardian)
    try:
        pool.scale_to(3)
        await wait_until(lambda: pool.ready_count() == 3, 60, "3 ready replicas")
        leased = [await pool.acquire() for _ in range(3)]
        async with aiohttp.ClientSession() as http:

            async def post(port: int, n: int) -> int:
                async with http.post(
                    f"http://127.0.0.1:{port}/", data=b"{}", headers={"ce-id": f"held-{n}"}
                ) as r:
                    return r.status

            requests = [asyncio.create_task(post(r.port, n)) for n, r in enumerate(leased)]
            await subscriber.wait_for(lambda _: True)  # let the requests reach the replicas
            pool.scale_to(1)  # two of the three busy replicas are chosen to stop
            assert pool.count("draining") == 2
            statuses = await asyncio.gather(*requests)
        for replica in leased:
            await pool.release(replica)
        assert statuses == [202, 202, 202]  # nobody was killed mid-event
        assert sorted(reported(subscriber)) == ["held-0", "held-1", "held-2"]
        await wait_until(lambda: len(pool.replicas) == 1, 30, "victims stopped")
    finally:
        await pool.close()
        await guardian.close()


async def test_scale_in_under_load_loses_nothing(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """A burst scales the workload out; then a steady trickle (two events outstanding at
    a time) needs fewer replicas, so the scaler removes replicas while events are in
    flight. Every event is delivered and no attempt fails: the replicas chosen to stop
    finished their events before they were stopped."""
    data = tmp_path / "data"
    text = manifests(f"{subscriber.url}/report", work=0.3, max_replicas=4)
    text = text.replace("stabilizationWindowSeconds: 1", "stabilizationWindowSeconds: 0")
    running = await system(text, data_dir=data)
    sent = [f"burst-{i}" for i in range(20)]
    await send(running, sent)
    for n in range(40):  # closed loop: the next event once all but two are done
        await subscriber.wait_for(lambda _: len(reported(subscriber)) >= len(sent) - 2)
        sent.append(f"trickle-{n}")
        await send(running, sent[-1:])
    await subscriber.wait_for(lambda _: set(sent) <= set(reported(subscriber)), timeout=90)
    stats = running.system.triggers["default/jobs"].dispatcher.stats
    await wait_until(lambda: stats.delivered == len(sent), 20, "every delivery")
    busy_scale_ins = [
        d
        for d in (await decisions(running, data))
        if 0 < int(d["to"]) < int(d["from"]) and int(d["inFlight"]) > 0  # type: ignore[call-overload]
    ]
    assert busy_scale_ins, [
        (d["from"], d["to"], d["inFlight"]) for d in (await decisions(running, data))
    ]
    assert stats.failed == 0
    assert stats.retried == 0


async def test_a_crashed_replica_is_replaced(tmp_path: Path) -> None:
    """A replica that exits on its own is replaced (with backoff) until the pool has
    the replicas it was asked for again."""
    marker = tmp_path / "crashed-once"
    # The first replica exits at once; later ones (marker present) serve normally.
    script = tmp_path / "flaky.py"
    script.write_text(
        "import os, sys, runpy\n"
        f"marker = {str(marker)!r}\n"
        "if not os.path.exists(marker):\n"
        "    open(marker, 'w').close()\n"
        "    sys.exit(3)\n"
        f"runpy.run_path({REPLICA!r}, run_name='__main__')\n"
    )
    guardian = Guardian()
    await guardian.start()
    pool = ReplicaPool(
        ReplicaConfig(workload="flaky", command=[sys.executable, str(script)]),
        concurrency=1,
        guardian=guardian,
    )
    try:
        pool.scale_to(1)
        await wait_until(lambda: pool.ready_count() == 1, 60, "a ready replacement")
        assert pool.crashes == 1
        assert [r.number for r in pool.replicas] == [2]
    finally:
        await pool.close()
        await guardian.close()
