"""Jobs per event on Kubernetes (issue 10, item 4): a job workload with a
``jobTemplate`` makes one batch/v1 Job per event on the test control plane (Job
controller, kwok fake nodes).

kwok runs no containers: its pod stages (scripts/servers.d/kubernetes/kwok-stages.yaml)
end a Job's pod after the time in the pod annotation ``kwok.eventing.local/run-for``,
with exit code 0, or with the code in ``kwok.eventing.local/exit-code``. Everything
else is real: the API server, the Job controller's conditions, the pods' container
statuses, deletion and garbage collection; the reply events go through the broker to a
loopback subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from eventing.app import cmd_jobs
from eventing.app.runtime import Running
from eventing.events import Event
from eventing.kube import jobs as kube_jobs
from eventing.kube import jobspec
from eventing.resources.refs import Platform
from tests.conftest import SystemFactory
from tests.support.k8s import Cluster, wait_for
from tests.support.mesh import wait_until
from tests.support.subscriber import RecordingSubscriber

PUSH = "dev.knative.source.github.push"


def workload(
    name: str, *, annotations: str, parallelism: int = 2, timeout: int = 60, keep: int = 20
) -> str:
    return f"""apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: {name}}}
spec:
  jobs: {{parallelism: {parallelism}, keep: {keep}}}
  timeoutSeconds: {timeout}
  jobTemplate:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      template:
        metadata: {{annotations: {{{annotations}}}}}
        spec:
          containers: [{{name: build, image: example.com/builder:1, args: [make]}}]
"""


def system_yaml(ns: str, next_url: str, workloads: dict[str, str], retry: int = 1) -> str:
    docs = [
        f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default, namespace: {ns}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: after-build, namespace: {ns}}}
spec:
  broker: default
  filters: [{{prefix: {{type: eventing.job.}}}}]
  subscriber: {{uri: "{next_url}"}}
"""
    ]
    for name, text in workloads.items():
        docs.append(text.replace("metadata: {name: ", f"metadata: {{namespace: {ns}, name: "))
        docs.append(f"""apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: to-{name}, namespace: {ns}}}
spec:
  broker: default
  filters: [{{exact: {{type: {PUSH}, subject: {name}}}}}]
  delivery: {{retry: {retry}, backoffDelay: PT0.1S, deadLetterSink: {{uri: "dlq:"}}}}
  subscriber: {{ref: {{kind: Workload, name: {name}}}}}
""")
    return "---\n".join(docs)


async def push(running: Running, ns: str, event_id: str, target: str) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "https://github.com/octo-org/app",
        "ce-type": PUSH,
        "ce-subject": target,
        "content-type": "application/json",
    }
    async with aiohttp.ClientSession() as http:
        url = f"{running.ingress_url}/{ns}/default"
        body = json.dumps({"sha": event_id})
        async with http.post(url, data=body, headers=headers) as r:
            assert r.status == 202, await r.text()


def replies(subscriber: RecordingSubscriber) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (r.headers["ce-type"], r.headers["ce-subject"], json.loads(r.body))
        for r in subscriber.received
        if r.path == "/next"
    ]


def jobs_of(cluster: Cluster, ns: str, name: str) -> list[Any]:
    found = cluster.batch.list_namespaced_job(
        ns, label_selector=jobspec.selector(name), _request_timeout=10
    )
    return list(found.items)


@pytest.fixture(scope="module", autouse=True)
def job_controller(k8s_cluster: Cluster) -> None:
    """Fail at once, saying why, on a cluster started before the Job controller was
    enabled (kube-controller-manager creates each controller's ServiceAccount when it
    starts it)."""
    accounts = k8s_cluster.core.list_namespaced_service_account("kube-system", _request_timeout=10)
    names = {a.metadata.name for a in accounts.items}
    if "job-controller" not in names:
        pytest.fail(
            "the test cluster runs no Job controller (started with an older "
            "scripts/servers): run scripts/servers up kubernetes, which restarts "
            "kube-controller-manager and kwok with the current configuration"
        )


async def start(system: SystemFactory, cluster: Cluster, text: str, tmp_path: Path) -> Running:
    return await system(
        text,
        data_dir=tmp_path / "data",
        platform=Platform(kubernetes=True, kubeconfig=str(cluster.kubeconfig)),
    )


async def test_a_push_runs_a_job_whose_reply_triggers_the_next_step(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
) -> None:
    ns = k8s_namespace
    text = system_yaml(ns, f"{subscriber.url}/next", {"build": workload("build", annotations="")})
    running = await start(system, k8s_cluster, text, tmp_path)
    await push(running, ns, "push-1", "build")
    await subscriber.wait_for(lambda _: len(replies(subscriber)) == 1, timeout=60)
    ((kind, subject, body),) = replies(subscriber)
    assert (kind, subject, body["state"], body["exitCode"]) == (
        "eventing.job.succeeded",
        "push-1",
        "succeeded",
        0,
    )
    assert body["workload"] == f"{ns}/build"
    assert isinstance(body["durationSeconds"], float)

    (job,) = await asyncio.to_thread(jobs_of, k8s_cluster, ns, "build")
    labels = job.metadata.labels
    assert labels[jobspec.LABEL_WORKLOAD] == "build"
    assert labels[jobspec.LABEL_ATTEMPT] == "1"
    assert labels["app"] == "build"
    assert job.metadata.annotations[jobspec.ANNOTATION_EVENT["id"]] == "push-1"
    assert job.spec.backoff_limit == 0
    assert job.spec.active_deadline_seconds == 60
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never"
    (container,) = pod.containers
    env = {e.name: e.value for e in container.env}
    assert env["K_EVENT_PATH"] == "/etc/jobsink-event"
    assert env["K_EVENT_FILE"] == "/etc/jobsink-event/event"
    assert (env["K_EVENT_ID"], env["K_EVENT_TYPE"]) == ("push-1", PUSH)
    (mount,) = container.volume_mounts
    assert (mount.name, mount.mount_path, mount.read_only) == (
        "jobsink-event",
        "/etc/jobsink-event",
        True,
    )
    secret = await asyncio.to_thread(
        k8s_cluster.core.read_namespaced_secret, job.metadata.name, ns, _request_timeout=10
    )
    event = json.loads(base64.b64decode(secret.data["event"]))
    assert (event["id"], event["data"]) == ("push-1", {"sha": "push-1"})
    assert secret.immutable is True
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", job.metadata.name, job.metadata.uid)

    # The same event again (a redelivery) finds its Job: no second one, same answer.
    runner = running.system.workloads.jobs[f"{ns}/build"]  # type: ignore[union-attr]
    again = Event(
        {
            "specversion": "1.0",
            "id": "push-1",
            "source": "https://github.com/octo-org/app",
            "type": PUSH,
            "subject": "build",
        },
        b"{}",
    )
    result = await runner.run(again, 60)
    assert (result.job_id, result.state, result.exit_code) == (job.metadata.name, "succeeded", 0)
    assert len(await asyncio.to_thread(jobs_of, k8s_cluster, ns, "build")) == 1


async def test_parallelism_counts_active_jobs_in_the_api(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
) -> None:
    ns = k8s_namespace
    build = workload("build", annotations="kwok.eventing.local/run-for: 2s", parallelism=2)
    text = system_yaml(ns, f"{subscriber.url}/next", {"build": build})
    running = await start(system, k8s_cluster, text, tmp_path)

    peak = 0
    seen: set[str] = set()
    stop = threading.Event()

    def watch_active() -> None:
        nonlocal peak
        while not stop.is_set():
            items = jobs_of(k8s_cluster, ns, "build")
            seen.update(j.metadata.name for j in items)
            active = [j for j in items if not _finished(j)]
            peak = max(peak, len(active))
            stop.wait(0.1)

    watcher = asyncio.create_task(asyncio.to_thread(watch_active))
    try:
        ids = [f"push-{i}" for i in range(5)]
        for event_id in ids:
            await push(running, ns, event_id, "build")
        await subscriber.wait_for(lambda _: len(replies(subscriber)) == 5, timeout=120)
    finally:
        stop.set()
        await watcher
    assert {s for _, s, _ in replies(subscriber)} == set(ids)
    assert {t for t, _, _ in replies(subscriber)} == {"eventing.job.succeeded"}
    assert len(seen) == 5
    assert 1 <= peak <= 2


async def test_finished_jobs_beyond_keep_are_deleted(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kube_jobs, "PRUNE_AFTER", 0.0)  # no grace: prune at once
    ns = k8s_namespace
    build = workload("build", annotations="", parallelism=1, keep=1)
    text = system_yaml(ns, f"{subscriber.url}/next", {"build": build})
    running = await start(system, k8s_cluster, text, tmp_path)
    for i in range(1, 4):
        await push(running, ns, f"push-{i}", "build")
        await subscriber.wait_for(lambda _: len(replies(subscriber)) == i, timeout=60)  # noqa: B023

    def one_left() -> list[Any] | None:
        found = jobs_of(k8s_cluster, ns, "build")
        return found if len(found) == 1 else None

    (kept,) = await asyncio.to_thread(wait_for, one_left, timeout=30, what="one Job kept")
    assert kept.metadata.annotations[jobspec.ANNOTATION_EVENT["id"]] == "push-3"


def _finished(job: Any) -> bool:
    return any(
        c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or []
    )


async def test_a_failing_job_is_retried_then_dead_lettered_and_a_slow_one_times_out(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = k8s_namespace
    broken = workload("broken", annotations='kwok.eventing.local/exit-code: "3"')
    slow = workload("slow", annotations="kwok.eventing.local/run-for: 1h", timeout=2)
    text = system_yaml(ns, f"{subscriber.url}/next", {"broken": broken, "slow": slow})
    running = await start(system, k8s_cluster, text, tmp_path)
    await push(running, ns, "push-bad", "broken")
    await push(running, ns, "push-slow", "slow")
    await subscriber.wait_for(lambda _: len(replies(subscriber)) == 4, timeout=120)
    failed = sorted(
        (s, b["state"], b["exitCode"]) for t, s, b in replies(subscriber) if t.endswith("failed")
    )
    assert failed == [
        ("push-bad", "failed", 3),
        ("push-bad", "failed", 3),
        ("push-slow", "timeout", None),
        ("push-slow", "timeout", None),
    ]
    for trigger in ("to-broken", "to-slow"):
        stats = running.system.triggers[f"{ns}/{trigger}"].dispatcher.stats
        await wait_until(lambda: stats.dead_lettered == 1, 20, f"{trigger} dead-lettered")  # noqa: B023
        assert (stats.retried, stats.delivered) == (1, 0)
    attempts = await asyncio.to_thread(jobs_of, k8s_cluster, ns, "broken")
    assert sorted(j.metadata.labels[jobspec.LABEL_ATTEMPT] for j in attempts) == ["1", "2"]

    # eventing jobs list --kubernetes: every attempt, with its state and exit code
    args = argparse.Namespace(
        kubernetes=True,
        kubeconfig=str(k8s_cluster.kubeconfig),
        namespace=ns,
        workload=None,
        json=True,
    )
    assert cmd_jobs.list_jobs(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["event_id"], r["state"], r["exit_code"]) for r in rows) == [
        ("push-bad", "failed", 3),
        ("push-bad", "failed", 3),
        ("push-slow", "timeout", None),
        ("push-slow", "timeout", None),
    ]
    # eventing jobs logs --kubernetes: kwok ran no container, so there is no log to get
    args = argparse.Namespace(
        kubernetes=True, kubeconfig=str(k8s_cluster.kubeconfig), namespace=ns, id=rows[0]["id"]
    )
    assert cmd_jobs.job_logs(args) == 1
    assert "no logs from the API server" in capsys.readouterr().err


async def test_a_cancelled_job_is_deleted_and_not_retried(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = k8s_namespace
    long = workload("long", annotations="kwok.eventing.local/run-for: 1h", timeout=600)
    text = system_yaml(ns, f"{subscriber.url}/next", {"long": long})
    running = await start(system, k8s_cluster, text, tmp_path)
    await push(running, ns, "push-long", "long")
    (job,) = await asyncio.to_thread(
        wait_for, lambda: jobs_of(k8s_cluster, ns, "long"), timeout=30, what="the Job"
    )
    args = argparse.Namespace(
        kubernetes=True,
        kubeconfig=str(k8s_cluster.kubeconfig),
        namespace=ns,
        id=f"{ns}/{job.metadata.name}",
    )
    assert cmd_jobs.cancel_job(args) == 0
    assert "cancel requested" in capsys.readouterr().out
    await subscriber.wait_for(lambda _: len(replies(subscriber)) == 1, timeout=30)
    ((kind, subject, body),) = replies(subscriber)
    assert (kind, subject, body["state"]) == ("eventing.job.failed", "push-long", "cancelled")
    stats = running.system.triggers[f"{ns}/to-long"].dispatcher.stats
    await wait_until(lambda: stats.delivered == 1, 20, "acknowledged")
    assert stats.retried == 0
    assert await asyncio.to_thread(jobs_of, k8s_cluster, ns, "long") == []
    assert cmd_jobs.cancel_job(args) == 1  # gone: nothing to cancel


async def test_a_knative_jobsink_runs_a_job_per_event(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
) -> None:
    """A Knative JobSink manifest loads as the job Workload it stands for."""
    ns = k8s_namespace
    text = (
        system_yaml(ns, f"{subscriber.url}/next", {})
        + f"""---
apiVersion: sinks.knative.dev/v1alpha1
kind: JobSink
metadata: {{name: knjob, namespace: {ns}}}
spec:
  job:
    apiVersion: batch/v1
    kind: Job
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: main, image: example.com/job:1}}]
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: to-knjob, namespace: {ns}}}
spec:
  broker: default
  filters: [{{exact: {{type: {PUSH}}}}}]
  subscriber: {{ref: {{apiVersion: sinks.knative.dev/v1alpha1, kind: JobSink, name: knjob}}}}
"""
    )
    running = await start(system, k8s_cluster, text, tmp_path)
    await push(running, ns, "push-kn", "knjob")
    await subscriber.wait_for(lambda _: len(replies(subscriber)) == 1, timeout=60)
    ((kind, subject, body),) = replies(subscriber)
    assert (kind, subject, body["workload"]) == ("eventing.job.succeeded", "push-kn", f"{ns}/knjob")
    (job,) = await asyncio.to_thread(jobs_of, k8s_cluster, ns, "knjob")
    assert job.spec.template.spec.volumes[0].secret.secret_name == job.metadata.name


async def test_after_a_restart_the_redelivered_event_follows_its_running_job(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    tmp_path: Path,
) -> None:
    """eventing stops while a Job runs: the event stays unacknowledged, the Job keeps
    running; the next eventing redelivers the event, finds the Job, follows it to its
    end and replies. One Job in all."""
    from eventing.app.runtime import RuntimeSettings
    from eventing.app.runtime import start as start_runtime
    from eventing.app.runtime import stop as stop_runtime
    from eventing.app.system import StoreSettings

    ns = k8s_namespace
    long = workload("long", annotations="kwok.eventing.local/run-for: 20s", timeout=120)
    text = system_yaml(ns, f"{subscriber.url}/next", {"long": long})
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "system.yaml").write_text(text)
    platform = Platform(kubernetes=True, kubeconfig=str(k8s_cluster.kubeconfig))
    settings = RuntimeSettings(
        port=0,
        admin_port=0,
        drain_timeout=0.5,
        store=StoreSettings(data_dir=tmp_path / "data", platform=platform),
    )
    first = await start_runtime(tmp_path / "first", settings)
    try:
        await push(first, ns, "push-r", "long")
        (job,) = await asyncio.to_thread(
            wait_for, lambda: jobs_of(k8s_cluster, ns, "long"), timeout=30, what="the Job"
        )
    finally:
        await stop_runtime(first, settings)
    assert replies(subscriber) == []  # stopped before the Job ended

    await start(system, k8s_cluster, text, tmp_path)  # same data directory
    await subscriber.wait_for(lambda _: len(replies(subscriber)) == 1, timeout=90)
    ((kind, subject, body),) = replies(subscriber)
    assert (kind, subject, body["jobId"]) == ("eventing.job.succeeded", "push-r", job.metadata.name)
    (only,) = await asyncio.to_thread(jobs_of, k8s_cluster, ns, "long")
    assert only.metadata.uid == job.metadata.uid
