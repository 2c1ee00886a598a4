"""``eventing jobs list|logs|cancel --kubernetes``: the Jobs that job workloads made,
read from the API server (blocking calls: this serves the command line).

- list: the Jobs labelled ``eventing.local/workload`` (one namespace or all), with
  their pods' exit codes (one LIST of Jobs, one LIST of pods);
- logs: each container's log of the Job's pods through the API server (``pods/log``),
  which asks the node's kubelet. On kwok's fake nodes no container ran and there is no
  kubelet to ask, so there are no logs: the command says so;
- cancel: delete the Job (propagation ``Background``: the garbage collector removes
  its pods and Secret). The running system sees it gone and reports the job cancelled
  (``eventing.job.failed`` with state ``cancelled``), not retried.
"""

from __future__ import annotations

from typing import Any

from eventing.kube import jobspec
from eventing.kube.api import KubeApi, KubeError

MAX_LOG_BYTES = 10 * 1024 * 1024


def list_jobs(api: KubeApi, namespace: str | None, workload: str | None) -> list[dict[str, Any]]:
    """One row per Job, oldest first. ``workload`` is ``namespace/name`` or ``name``."""
    selector = jobspec.LABEL_WORKLOAD
    if workload:
        ns, _, name = workload.rpartition("/")
        namespace = ns or namespace
        selector = jobspec.selector(name)
    jobs = api.list_jobs(namespace, selector)
    pods = api.list_pods_in(namespace, jobspec.LABEL_WORKLOAD)
    by_job: dict[tuple[str, str], list[Any]] = {}
    for pod in pods:
        meta = pod.get("metadata", {})
        job = (meta.get("labels") or {}).get(jobspec.JOB_NAME_LABEL)
        if job:
            by_job.setdefault((meta.get("namespace", ""), job), []).append(pod)
    rows = [_row(job, by_job) for job in jobs]
    return sorted(rows, key=lambda r: (r["started"] or 0.0, r["id"]))


def _row(job: dict[str, Any], by_job: dict[tuple[str, str], list[Any]]) -> dict[str, Any]:
    meta = job.get("metadata", {})
    labels = meta.get("labels") or {}
    notes = meta.get("annotations") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    state = jobspec.job_state(job)
    started, ended = jobspec.job_times(job)
    return {
        "id": name,
        "namespace": namespace,
        "workload": f"{namespace}/{labels.get(jobspec.LABEL_WORKLOAD, '')}",
        "attempt": int(labels.get(jobspec.LABEL_ATTEMPT, "0") or 0),
        "event_id": notes.get(jobspec.ANNOTATION_EVENT["id"], ""),
        "event_source": notes.get(jobspec.ANNOTATION_EVENT["source"], ""),
        "event_type": notes.get(jobspec.ANNOTATION_EVENT["type"], ""),
        "state": state,
        "started": started.timestamp() if started else None,
        "finished": ended.timestamp() if ended else None,
        "exit_code": jobspec.exit_code(by_job.get((namespace, name), []))
        if state in ("succeeded", "failed")
        else None,
        "duration_seconds": jobspec.job_duration(job),
    }


def logs(api: KubeApi, namespace: str, name: str) -> tuple[bytes, str | None]:
    """The output of the Job's pods (each container, oldest pod first), and why some
    or all of it could not be read (``None`` if all was)."""
    pods = api.list_pods_in(namespace, f"{jobspec.JOB_NAME_LABEL}={name}")
    if not pods:
        return b"", f"job {namespace}/{name} has no pods (none started yet, or deleted)"
    out, problems = [], []
    pods.sort(key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        for container in pod.get("spec", {}).get("containers", []):
            try:
                out.append(api.pod_log(namespace, pod_name, container["name"], MAX_LOG_BYTES))
            except KubeError as exc:
                problems.append(f"{pod_name}/{container['name']}: {exc}")
    if problems:
        why = "; ".join(problems)
        return b"".join(out), f"no logs from the API server for {why}"
    return b"".join(out), None


def cancel(api: KubeApi, namespace: str, name: str) -> str:
    try:
        jobs = api.list_jobs(namespace, jobspec.LABEL_WORKLOAD)
        job = next((j for j in jobs if j["metadata"]["name"] == name), None)
        if job is None:
            return f"no job {namespace}/{name}"
        if jobspec.job_state(job) != "running":
            return f"job {namespace}/{name} is not running"
        api.delete_job(namespace, name)
    except KubeError as exc:
        return f"job {namespace}/{name}: {exc}"
    return f"job {namespace}/{name}: cancel requested (Job deleted)"
