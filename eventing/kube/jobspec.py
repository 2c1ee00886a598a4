"""The Job and Secret made for one event (pure functions; no API calls).

The event reaches the job as Knative's JobSink gives it: a ``Secret`` named like the
Job holds the event in structured JSON under the key ``event``; it is mounted
read-only at ``/etc/jobsink-event`` (volume ``jobsink-event``) in every container, and
``K_EVENT_PATH`` names that directory. As for a local job, ``K_EVENT_FILE`` names the
file itself and ``K_EVENT_ID``, ``K_EVENT_SOURCE``, ``K_EVENT_TYPE`` and
``K_EVENT_SUBJECT`` carry the core attributes. The Secret is owned by the Job, so the
garbage collector deletes it with the Job.

Names: ``<workload>-<event hash>-<attempt>``. The event hash is the first 20 hex digits
of SHA-256 over (source, id), so a redelivered event finds its Job instead of
starting a second one; the attempt number counts delivery retries (each retry of a
failed job is a new Job; the failed ones stay for ``eventing jobs logs``). Labels link
each Job and its pods to the workload, the event and the attempt.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
from datetime import datetime
from typing import Any

from eventing.events import Event
from eventing.workloads.jobs import JobState

LABEL_WORKLOAD = "eventing.local/workload"
LABEL_EVENT = "eventing.local/event"
LABEL_ATTEMPT = "eventing.local/attempt"
ANNOTATION_EVENT = {
    "id": "eventing.local/event-id",
    "source": "eventing.local/event-source",
    "type": "eventing.local/event-type",
}
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
"""Set by the Job controller on each pod of a Job."""

EVENT_VOLUME = "jobsink-event"
EVENT_MOUNT = "/etc/jobsink-event"
EVENT_KEY = "event"
MAX_EVENT_BYTES = 1_000_000
"""A Secret holds at most 1 MiB; a larger event cannot be given to a Job."""
MAX_ENV_VALUE = 4096
MAX_ANNOTATION = 1024
HASH_DIGITS = 20
MIN_TTL_AFTER_FINISHED = 60
"""A template's ``ttlSecondsAfterFinished`` is raised to this, so the runner reads the
Job's result before the TTL controller deletes it."""
MAX_NAME = 63
"""Job names become the value of the pods' ``job-name`` label: at most 63 characters."""


def event_hash(event: Event) -> str:
    """Which event a Job is for: SHA-256 over (source, id), 20 hex digits (80 bits)."""
    identity = json.dumps([event.source, event.id]).encode()
    return hashlib.sha256(identity).hexdigest()[:HASH_DIGITS]


def job_name(workload_name: str, ehash: str, attempt: int) -> str:
    suffix = f"-{ehash}-{attempt}"
    prefix = workload_name[: MAX_NAME - len(suffix)].rstrip("-.")
    return f"{prefix}{suffix}"


def selector(workload_name: str, ehash: str | None = None) -> str:
    """The label selector of a workload's Jobs (of one event, with ``ehash``)."""
    parts = [f"{LABEL_WORKLOAD}={workload_name}"]
    if ehash is not None:
        parts.append(f"{LABEL_EVENT}={ehash}")
    return ",".join(parts)


def build_job(
    template_meta: dict[str, dict[str, str]],
    template_spec: dict[str, Any],
    *,
    name: str,
    workload_name: str,
    event: Event,
    ehash: str,
    attempt: int,
    timeout: float,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Job for one attempt at ``event``. Defaults where the template says nothing:
    ``restartPolicy: Never``, ``backoffLimit: 0`` (retries are the trigger's delivery
    retries, each a new Job) and ``activeDeadlineSeconds`` = ``timeout`` rounded up; a
    ``ttlSecondsAfterFinished`` under :data:`MIN_TTL_AFTER_FINISHED` is raised to it."""
    spec = copy.deepcopy(template_spec)
    labels = {
        **template_meta.get("labels", {}),
        **(extra_labels or {}),
        LABEL_WORKLOAD: workload_name,
        LABEL_EVENT: ehash,
        LABEL_ATTEMPT: str(attempt),
    }
    annotations = {
        **template_meta.get("annotations", {}),
        **{
            key: str(event.get(attr))[:MAX_ANNOTATION]
            for attr, key in ANNOTATION_EVENT.items()
            if event.get(attr) is not None
        },
    }
    spec.setdefault("backoffLimit", 0)
    ttl = spec.get("ttlSecondsAfterFinished")
    if isinstance(ttl, int) and ttl < MIN_TTL_AFTER_FINISHED:
        spec["ttlSecondsAfterFinished"] = MIN_TTL_AFTER_FINISHED
    spec.setdefault("activeDeadlineSeconds", max(1, math.ceil(timeout)))
    pod_template = spec.setdefault("template", {})
    pod_meta = pod_template.setdefault("metadata", {})
    pod_meta["labels"] = {**pod_meta.get("labels", {}), **labels}
    pod = pod_template.setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    volumes = pod.setdefault("volumes", [])
    if not any(v.get("name") == EVENT_VOLUME for v in volumes):
        volumes.append({"name": EVENT_VOLUME, "secret": {"secretName": name}})
    for container in pod.get("containers", []):
        mounts = container.setdefault("volumeMounts", [])
        path = next((m.get("mountPath") for m in mounts if m.get("name") == EVENT_VOLUME), None)
        if path is None:
            path = EVENT_MOUNT
            mounts.append({"name": EVENT_VOLUME, "mountPath": path, "readOnly": True})
        container["env"] = [*container.get("env", []), *_event_env(event, path)]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": spec,
    }


def _event_env(event: Event, path: str) -> list[dict[str, str]]:
    env = [
        {"name": "K_EVENT_PATH", "value": path},
        {"name": "K_EVENT_FILE", "value": f"{path.rstrip('/')}/{EVENT_KEY}"},
    ]
    for attr in ("id", "source", "type", "subject"):
        value = event.get(attr)
        if value is not None and len(str(value)) <= MAX_ENV_VALUE:
            env.append({"name": f"K_EVENT_{attr.upper()}", "value": str(value)})
    return env


def build_secret(job: dict[str, Any], uid: str, event_json: bytes) -> dict[str, Any]:
    """The event's Secret for ``job`` (created, with uid ``uid``): owned by the Job."""
    meta = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": {
            "name": meta["name"],
            "labels": dict(meta["labels"]),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "data": {EVENT_KEY: base64.b64encode(event_json).decode("ascii")},
    }


# -- reading what Kubernetes says ---------------------------------------------------


def job_state(job: dict[str, Any]) -> JobState:
    """From the Job's terminal conditions: ``Complete`` -> succeeded, ``Failed`` ->
    failed (``timeout`` when its reason is ``DeadlineExceeded``); being deleted ->
    cancelled; otherwise running."""
    if job.get("metadata", {}).get("deletionTimestamp"):
        return "cancelled"
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return "succeeded"
        if cond.get("type") == "Failed":
            return "timeout" if cond.get("reason") == "DeadlineExceeded" else "failed"
    return "running"


def job_times(job: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """When the Job started and when it ended (``None`` while it runs), as Kubernetes
    recorded them (whole seconds)."""
    status = job.get("status", {})
    started = _time(status.get("startTime")) or _time(
        job.get("metadata", {}).get("creationTimestamp")
    )
    ended = _time(status.get("completionTime"))
    if ended is None:
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Failed" and cond.get("status") == "True":
                ended = _time(cond.get("lastTransitionTime"))
    return started, ended


def job_duration(job: dict[str, Any]) -> float | None:
    started, ended = job_times(job)
    if started is None or ended is None:
        return None
    return max(0.0, (ended - started).total_seconds())


def exit_code(pods: list[dict[str, Any]]) -> int | None:
    """The exit code of a Job's last pod: its first non-zero container exit code, else
    0; ``None`` if no container of it has terminated (e.g. deleted at the deadline)."""
    if not pods:
        return None
    last = max(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")
    codes = [
        c["state"]["terminated"].get("exitCode")
        for c in last.get("status", {}).get("containerStatuses") or []
        if isinstance(c.get("state", {}).get("terminated"), dict)
    ]
    codes = [c for c in codes if isinstance(c, int)]
    if not codes:
        return None
    return next((c for c in codes if c != 0), 0)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
