"""Jobs per event (issue 10, item 4), through the running system with real processes:
a push runs a build job with the event as a file and K_EVENT_* variables; its success
reply triggers a second trigger; a failing job is retried by the delivery spec, then
dead-lettered, each failed run announced as eventing.job.failed; parallelism and the
timeout are enforced; logs are kept per job; a cancelled job is not retried."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from eventing.app import cmd_jobs
from eventing.app.runtime import Running
from eventing.app.status import system_status
from eventing.app.tables import print_status
from sinks import jobstore
from tests.conftest import SystemFactory
from tests.support.mesh import wait_until
from tests.support.subscriber import RecordingSubscriber

BUILD = """
import json, os, sys, time
event = json.load(open(os.environ["K_EVENT_FILE"]))
data = event.get("data") or {}
with open(os.environ["TRACE_FILE"], "a") as f:
    f.write(f"start {os.environ['K_EVENT_ID']} {time.monotonic()}\\n")
print("building", os.environ["K_EVENT_TYPE"], data.get("sha"), flush=True)
time.sleep(float(data.get("sleep", 0)))
with open(os.environ["TRACE_FILE"], "a") as f:
    f.write(f"end {os.environ['K_EVENT_ID']} {time.monotonic()}\\n")
sys.exit(int(data.get("exit", 0)))
"""


def manifests(script: Path, trace: Path, next_step: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: build}}
spec:
  command: ["{sys.executable}", "{script}"]
  env: [{{name: TRACE_FILE, value: "{trace}"}}]
  jobs: {{parallelism: 2}}
  timeoutSeconds: 3
  terminationGracePeriodSeconds: 1
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: builds}}
spec:
  broker: default
  filters: [{{exact: {{type: dev.knative.source.github.push}}}}]
  delivery: {{retry: 1, backoffDelay: PT0.1S, deadLetterSink: {{uri: "dlq:"}}}}
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: build}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: after-build}}
spec:
  broker: default
  filters: [{{prefix: {{type: eventing.job.}}}}]
  subscriber: {{uri: "{next_step}"}}
"""


async def push(running: Running, event_id: str, data: dict[str, object]) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "https://github.com/octo-org/app",
        "ce-type": "dev.knative.source.github.push",
        "content-type": "application/json",
    }
    async with aiohttp.ClientSession() as http:
        url = f"{running.ingress_url}/default/default"
        async with http.post(url, data=json.dumps(data), headers=headers) as r:
            assert r.status == 202


def replies(subscriber: RecordingSubscriber) -> list[tuple[str, str, dict[str, object]]]:
    out = []
    for r in subscriber.received:
        if r.path == "/next":
            body = json.loads(r.body)
            out.append((r.headers["ce-type"], r.headers["ce-subject"], body))
    return out


def max_overlap(trace: Path) -> int:
    running = peak = 0
    rows = [line.split() for line in trace.read_text().splitlines()]
    for kind, _, _ in sorted(rows, key=lambda r: float(r[2])):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    return peak


async def test_jobs_per_event(
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script, trace = tmp_path / "build.py", tmp_path / "trace.txt"
    script.write_text(BUILD)
    data = tmp_path / "data"
    running = await system(manifests(script, trace, f"{subscriber.url}/next"), data_dir=data)
    ok = [f"push-{i}" for i in range(5)]
    for event_id in ok:
        await push(running, event_id, {"sha": event_id[-1] * 7, "sleep": 0.5})
    await push(running, "push-broken", {"sha": "bad", "exit": 3})
    await push(running, "push-slow", {"sha": "slow", "sleep": 30})

    def settled() -> bool:
        got = replies(subscriber)
        succeeded = {s for t, s, _ in got if t == "eventing.job.succeeded"}
        failed = [s for t, s, _ in got if t == "eventing.job.failed"]
        return succeeded == set(ok) and len(failed) == 4

    await subscriber.wait_for(lambda _: settled(), timeout=60)
    stats = running.system.triggers["default/builds"].dispatcher.stats
    await wait_until(lambda: stats.dead_lettered == 2, 20, "two dead letters")
    assert stats.delivered == len(ok)
    assert stats.retried == 2  # the broken and the slow job, once each (retry: 1)

    got = replies(subscriber)
    failed = sorted((s, body["state"]) for t, s, body in got if t == "eventing.job.failed")
    assert failed == [
        ("push-broken", "failed"),
        ("push-broken", "failed"),
        ("push-slow", "timeout"),
        ("push-slow", "timeout"),
    ]
    broken = next(b for t, s, b in got if s == "push-broken")
    assert broken["exitCode"] == 3
    assert max_overlap(trace) <= 2  # parallelism

    jobs = jobstore.list_jobs(data, "default/build")
    assert len(jobs) == len(ok) + 4
    by_event = {j.event_id: j for j in jobs if j.state == "succeeded"}
    assert set(by_event) == set(ok)
    log = jobstore.find_job(data, by_event["push-1"].id)
    assert log is not None
    assert (log / "output.log").read_text() == ("building dev.knative.source.github.push 1111111\n")
    slow = [j for j in jobs if j.event_id == "push-slow"]
    assert all(j.duration_seconds is not None and j.duration_seconds < 10 for j in slow)

    (status,) = system_status(running)["jobs"]
    assert status["name"] == "default/build"
    assert status["finished"] == {"succeeded": 5, "failed": 2, "timeout": 2}
    # The status table lists job workloads: running, queued, parallelism, then how
    # their jobs ended (succeeded, failed, timed out, cancelled).
    print_status(system_status(running))
    table = capsys.readouterr().out
    assert "JOB WORKLOAD" in table
    assert ["default/build", "0", "0", "2", "5", "2", "2", "0"] in [
        line.split() for line in table.splitlines()
    ]

    args = argparse.Namespace(data_dir=data, id=by_event["push-1"].id)
    assert cmd_jobs.job_logs(args) == 0
    assert "building" in capsys.readouterr().out
    listing = argparse.Namespace(data_dir=data, workload=None, json=True)
    assert cmd_jobs.list_jobs(listing) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(jobs)


async def test_a_cancelled_job_is_not_retried(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    script, trace = tmp_path / "build.py", tmp_path / "trace.txt"
    script.write_text(BUILD)
    data = tmp_path / "data"
    text = manifests(script, trace, f"{subscriber.url}/next").replace(
        "timeoutSeconds: 3", "timeoutSeconds: 60"
    )
    running = await system(text, data_dir=data)
    await push(running, "push-long", {"sleep": 50})
    await wait_until(
        lambda: trace.exists() and "start push-long" in trace.read_text(), 30, "job started"
    )
    (job,) = jobstore.list_jobs(data)
    assert jobstore.cancel(data, job.id).endswith("cancel requested")
    await subscriber.wait_for(lambda _: len(replies(subscriber)) == 1, timeout=30)
    ((kind, subject, body),) = replies(subscriber)
    assert (kind, subject, body["state"]) == ("eventing.job.failed", "push-long", "cancelled")
    stats = running.system.triggers["default/builds"].dispatcher.stats
    await wait_until(lambda: stats.delivered == 1, 20, "acknowledged")
    assert stats.retried == 0
    assert [j.state for j in jobstore.list_jobs(data)] == ["cancelled"]


def test_cancel_never_signals_a_process_that_reused_the_id(tmp_path: Path) -> None:
    """A status file naming a live process whose start time differs (the job ended and
    the id was reused) is refused, as are ids that are not job ids."""
    job_id, job_dir = jobstore.new_job(tmp_path, "default/build")
    status = jobstore.JobStatus(
        id=job_id,
        workload="default/build",
        event_id="e",
        event_source="/s",
        event_type="t",
        state="running",
        started=0.0,
        pid=os.getpid(),  # alive, but not the job's process
        pid_start=(jobstore.process_start(os.getpid()) or 0) + 1,
    )
    jobstore.write_status(job_dir, status)
    assert jobstore.cancel(tmp_path, job_id) == f"job {job_id} is not running"
    assert not (job_dir / "cancel").exists()
    assert jobstore.cancel(tmp_path, "../../etc") == "no job ../../etc"
