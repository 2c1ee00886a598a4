"""Where the job sink keeps each job: its event, its output and its status, on disk.

Why files and not the admin API: a job outlives the HTTP request that started it and
its output may be long; ``eventing jobs list|logs|cancel`` reads the same directory
the running system writes, so it works while the system runs and after it stopped.

Layout, under ``<data dir>/jobs/<namespace>.<workload>/<job id>/``:

- ``event.json``: the CloudEvent in structured JSON (Knative JobSink mounts the same
  at ``/etc/jobsink-event/event``), given to the job as ``K_EVENT_FILE``;
- ``output.log``: the job's stdout and stderr, at most :data:`MAX_LOG_BYTES`;
- ``status.json``: :class:`JobStatus`, replaced atomically at start and end;
- ``cancel``: present once ``eventing jobs cancel`` asked the job to stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from eventing.workloads.jobs import JobState

MAX_LOG_BYTES = 10 * 1024 * 1024
"""Output kept per job; the rest is read and dropped (the job never blocks on it)."""

JOB_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,80}-\d{14}-[0-9a-f]{6}$")
"""What a job id looks like; anything else is refused before it touches a path."""


@dataclass
class JobStatus:
    id: str
    workload: str
    event_id: str
    event_source: str
    event_type: str
    state: JobState
    started: float
    finished: float | None = None
    exit_code: int | None = None
    duration_seconds: float | None = None
    pid: int | None = None
    pid_start: int | None = None
    """The process's start time (``/proc/<pid>/stat`` field 22) when it was started, so
    ``cancel`` never signals another process that reused the id."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def jobs_root(data_dir: Path) -> Path:
    return data_dir / "jobs"


def workload_dir(data_dir: Path, workload: str) -> Path:
    """``namespace/name`` -> ``<data dir>/jobs/namespace.name``."""
    return jobs_root(data_dir) / workload.replace("/", ".")


def new_job(data_dir: Path, workload: str) -> tuple[str, Path]:
    """A fresh job id and its (created) directory."""
    name = workload.rsplit("/", 1)[-1].lower()
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    job_id = f"{name}-{stamp}-{secrets.token_hex(3)}"
    path = workload_dir(data_dir, workload) / job_id
    path.mkdir(parents=True, exist_ok=False)
    return job_id, path


def write_status(job_dir: Path, status: JobStatus) -> None:
    tmp = job_dir / "status.json.tmp"
    tmp.write_text(json.dumps(status.as_dict()), encoding="utf-8")
    os.replace(tmp, job_dir / "status.json")


def read_status(job_dir: Path) -> JobStatus | None:
    try:
        raw = json.loads((job_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = {f.name for f in fields(JobStatus)}
    if not isinstance(raw, dict) or not names >= set(raw) or "id" not in raw:
        return None
    return JobStatus(**raw)


def list_jobs(data_dir: Path, workload: str | None = None) -> list[JobStatus]:
    """Every job kept, oldest first (optionally of one workload)."""
    root = jobs_root(data_dir)
    dirs = [workload_dir(data_dir, workload)] if workload else sorted(root.glob("*"))
    found = []
    for wdir in dirs:
        for job_dir in wdir.glob("*") if wdir.is_dir() else ():
            status = read_status(job_dir)
            if status is not None:
                found.append(status)
    return sorted(found, key=lambda s: (s.started, s.id))


def find_job(data_dir: Path, job_id: str) -> Path | None:
    if not JOB_ID.match(job_id):
        return None
    for wdir in jobs_root(data_dir).glob("*"):
        candidate = wdir / job_id
        if candidate.is_dir():
            return candidate
    return None


def prune(data_dir: Path, workload: str, keep: int) -> None:
    """Forget the oldest finished jobs of ``workload`` beyond ``keep``."""
    finished = [
        s for s in list_jobs(data_dir, workload) if s.state != "running" and s.finished is not None
    ]
    for status in finished[: max(0, len(finished) - keep)]:
        shutil.rmtree(workload_dir(data_dir, workload) / status.id, ignore_errors=True)


def cancel(data_dir: Path, job_id: str) -> str:
    """Ask a running job to stop (SIGTERM to its process group); says what happened."""
    job_dir = find_job(data_dir, job_id)
    if job_dir is None:
        return f"no job {job_id}"
    status = read_status(job_dir)
    if status is None or status.state != "running" or status.pid is None:
        return f"job {job_id} is not running"
    if status.pid_start is None or process_start(status.pid) != status.pid_start:
        return f"job {job_id} is not running"
    (job_dir / "cancel").touch()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(status.pid, signal.SIGTERM)
    return f"job {job_id}: cancel requested"


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot, or ``None`` if it is gone (or
    this is not Linux: then ``cancel`` refuses rather than guess)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields_after_name = raw.rsplit(")", 1)[-1].split()
    try:
        return int(fields_after_name[19])  # field 22 overall; 20th after "pid (comm)"
    except (IndexError, ValueError):
        return None


def cancelled(job_dir: Path) -> bool:
    return (job_dir / "cancel").exists()
