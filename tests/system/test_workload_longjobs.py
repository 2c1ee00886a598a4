"""Acceptance (issue 10): events whose work outlasts the scale-in window, through the
whole running system with real subprocess replicas. A warm first event, then a burst,
then quiet: every job starts once and finishes once, no replica is stopped while busy,
nothing is redelivered or retried, the workload never asks for more replicas than the
burst can use, and it returns to zero.

The clock is scaled down: jobs take 3 s while the stabilisation window, the cooldown
and the termination grace are 1 s, 1 s and 0.5 s — the proportions of minutes-long
builds against the defaults, where the old policy killed busy replicas."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import SystemFactory
from tests.support.mesh import wait_until
from tests.support.subscriber import RecordingSubscriber
from tests.system.test_workloads import decisions, send

REPLICA = str(Path(__file__).resolve().parents[1] / "support" / "replica_app.py")
KEY = "default/builder"
JOB_SECONDS = 3.0
BURST = 8


def manifests(report: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: builder}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  env:
    - {{name: WORK_SECONDS, value: "{JOB_SECONDS}"}}
    - {{name: REPORT_URL, value: "{report}/done"}}
    - {{name: START_URL, value: "{report}/start"}}
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling:
    maxReplicas: 20
    concurrencyPerReplica: 1
    keepAlive: fixed
    cooldownPeriod: 1
    stabilizationWindowSeconds: 1
  terminationGracePeriodSeconds: 0.5
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: builds}}
spec:
  broker: default
  delivery: {{timeout: PT30S, retry: 3}}
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: builder}}}}
"""


def ids(subscriber: RecordingSubscriber, path: str) -> list[str]:
    return [json.loads(r.body)["id"] for r in subscriber.received if r.path == path]


async def test_long_jobs_run_once_each_and_no_busy_replica_is_stopped(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    running = await system(manifests(subscriber.url), data_dir=data)
    workload = running.system.workloads.items[KEY]  # type: ignore[union-attr]
    pool = workload.pool
    stopped_busy: list[str] = []
    pool_stop = pool._stop_one

    async def watched_stop(replica):  # type: ignore[no-untyped-def]
        await pool_stop(replica)
        if replica.stopped_busy:
            stopped_busy.append(replica.name)

    pool._stop_one = watched_stop  # type: ignore[method-assign]

    await send(running, ["warm-up"])  # measures the service time, as in the issue
    await subscriber.wait_for(lambda _: "warm-up" in ids(subscriber, "/done"), timeout=60)
    burst = [f"build-{i}" for i in range(BURST)]
    await send(running, burst)
    everything = {"warm-up", *burst}
    await subscriber.wait_for(lambda _: everything <= set(ids(subscriber, "/done")), timeout=120)
    await wait_until(lambda: pool.desired == 0 and not pool.replicas, 60, "back to zero once quiet")

    started, done = ids(subscriber, "/start"), ids(subscriber, "/done")
    assert sorted(started) == sorted(everything)  # every job started exactly once
    assert sorted(done) == sorted(everything)  # and finished exactly once
    assert stopped_busy == []
    assert pool.redelivered == {}
    stats = running.system.triggers["default/builds"].dispatcher.stats
    await wait_until(lambda: stats.delivered == len(everything), 20, "every delivery")
    assert stats.retried == 0
    assert stats.failed == 0
    peak = max(int(d["to"]) for d in (await decisions(running, data)))  # type: ignore[call-overload]
    # The burst can keep at most BURST replicas busy (plus what a start-up's worth of
    # arrivals may need); the old policy asked for twice the jobs.
    assert 1 < peak <= BURST + 2, [(d["to"], d["reason"]) for d in (await decisions(running, data))]


async def test_the_workloads_own_timeout_replaces_a_shorter_delivery_timeout(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """The trigger's delivery timeout (1 s) is shorter than the work (3 s): without the
    workload's ``timeoutSeconds`` every attempt would time out and the job would run
    again on each retry. With ``timeoutSeconds: 30`` each job runs once."""
    text = (
        manifests(subscriber.url)
        .replace("delivery: {timeout: PT30S, retry: 3}", "delivery: {timeout: PT1S, retry: 3}")
        .replace(
            "  terminationGracePeriodSeconds: 0.5",
            "  timeoutSeconds: 30\n  terminationGracePeriodSeconds: 0.5",
        )
    )
    assert "timeoutSeconds: 30" in text
    running = await system(text, data_dir=tmp_path / "data")
    jobs = [f"job-{i}" for i in range(3)]
    await send(running, jobs)
    await subscriber.wait_for(lambda _: set(jobs) <= set(ids(subscriber, "/done")), timeout=60)
    stats = running.system.triggers["default/builds"].dispatcher.stats
    await wait_until(lambda: stats.delivered == len(jobs), 20, "every delivery")
    assert sorted(ids(subscriber, "/start")) == jobs
    assert stats.retried == 0
