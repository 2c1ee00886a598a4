"""Jobs per event: a Workload with a ``jobs`` block runs one subprocess per event.

Why not a replica that answers HTTP: a build runs for minutes; holding an HTTP request
open that long couples the work to a connection, a delivery timeout and a scale-in
decision (Knative's JobSink and KEDA's ScaledJob exist for the same reason). Here each
event starts a process of its own, in its own process group, with:

- the event as a file (structured JSON, like Knative JobSink's
  ``/etc/jobsink-event/event``) named by ``K_EVENT_FILE``, and its core attributes as
  ``K_EVENT_ID``, ``K_EVENT_SOURCE``, ``K_EVENT_TYPE``, ``K_EVENT_SUBJECT``;
- only the environment the manifest asks for, plus the process basics (no secret of
  ours leaks into a job);
- at most ``parallelism`` jobs at once per workload (the others wait, burning no
  retry);
- a timeout: the workload's ``timeoutSeconds``, else the trigger's delivery timeout;
  past it the job's process group gets SIGTERM, then SIGKILL after
  ``terminationGracePeriodSeconds``;
- its output kept per job (:mod:`sinks.jobstore`), the last ``keep`` jobs kept.

The outcome follows the delivery contract: exit code 0 is a success (2xx) whose reply
``eventing.job.succeeded`` the dispatcher stores in the broker before it acknowledges;
a non-zero exit or a timeout is a failure (500), retried by the trigger's delivery spec
and in the end dead-lettered, and each failed run also publishes
``eventing.job.failed``. A job cancelled with ``eventing jobs cancel`` is not retried.
The reply's data holds the job id, the exit code and the duration; its ``subject`` is
the id of the event that started the job, so a next step can trigger on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from eventing.codec.jsonformat import to_json_bytes
from eventing.delivery.sink import Outcome
from eventing.events import AttributeValue, Event
from eventing.workloads.jobs import JobError, JobResult, JobRunner, JobState
from eventing.workloads.replica import INHERITED
from eventing.workloads.spawn import Child, spawn
from sinks import jobstore
from sinks.jobstore import JobStatus

logger = logging.getLogger(__name__)

SUCCEEDED = "eventing.job.succeeded"
FAILED = "eventing.job.failed"
MAX_ENV_VALUE = 4096
"""Attributes longer than this are not copied into the environment (the file has them)."""

Publish = Callable[[Event], Awaitable[None]]


class LocalJobRunner:
    """Runs the jobs of one workload as local subprocesses (a :class:`JobRunner`)."""

    def __init__(
        self,
        workload: str,
        command: Sequence[str],
        *,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        parallelism: int = 1,
        keep: int = 100,
        timeout: float | None = None,
        grace: float = 10.0,
        on_start: Callable[[int], None] | None = None,
        on_end: Callable[[int], None] | None = None,
    ) -> None:
        """``on_start``/``on_end`` get each job's process group (the runtime registers
        it with the orphan guardian, so a job dies with eventing even after kill -9)."""
        self.workload = workload
        self.command = list(command)
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.working_dir = working_dir
        self.parallelism = parallelism
        self.keep = keep
        self.timeout = timeout
        self.grace = grace
        self._on_start = on_start
        self._on_end = on_end
        self._slots = asyncio.Semaphore(parallelism)
        self.running = 0
        self.queued = 0
        """Jobs waiting for a free slot (``parallelism`` are running)."""
        self.finished: dict[str, int] = {}

    def environment(self, event: Event, event_file: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env["K_EVENT_FILE"] = str(event_file)
        for name in ("id", "source", "type", "subject"):
            value = event.get(name)
            if value is not None and len(str(value)) <= MAX_ENV_VALUE:
                env[f"K_EVENT_{name.upper()}"] = str(value)
        return env

    async def run(self, event: Event, timeout: float) -> JobResult:
        """Run one job for ``event`` (waiting for a free slot first)."""
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        try:
            self.running += 1
            try:
                return await self._run(event, self.timeout or timeout)
            finally:
                self.running -= 1
        finally:
            self._slots.release()

    async def _run(self, event: Event, timeout: float) -> JobResult:
        job_id, job_dir = jobstore.new_job(self.data_dir, self.workload)
        event_file = job_dir / "event.json"
        event_file.write_bytes(to_json_bytes(event))
        started = time.time()
        status = JobStatus(
            id=job_id,
            workload=self.workload,
            event_id=event.id,
            event_source=event.source,
            event_type=event.type,
            state="running",
            started=started,
        )
        state: JobState
        code: int | None = None
        try:
            proc = await spawn(  # vfork: a job per event pays no fork of this process
                self.command,
                env=self.environment(event, event_file),
                cwd=self.working_dir,
                merge_stderr=True,
            )
        except OSError as exc:
            (job_dir / "output.log").write_text(f"cannot start the job: {exc}\n")
            state = "failed"
        else:
            status.pid = proc.pid
            status.pid_start = jobstore.process_start(proc.pid)
            jobstore.write_status(job_dir, status)
            if self._on_start is not None:
                self._on_start(proc.pid)
            assert proc.stdout is not None
            pump = asyncio.create_task(_keep_output(proc.stdout, job_dir / "output.log"))
            try:
                async with asyncio.timeout(timeout):
                    code = await proc.wait()
                state = "succeeded" if code == 0 else "failed"
            except TimeoutError:
                await self._stop(proc)
                code = proc.returncode
                state = "timeout"
            finally:
                _signal(proc.pid, signal.SIGKILL)  # anything the job left behind
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await pump
                if not pump.done():
                    pump.cancel()
                if self._on_end is not None:
                    self._on_end(proc.pid)
            if jobstore.cancelled(job_dir) and state != "succeeded":
                state = "cancelled"
        finished = time.time()
        status.state, status.exit_code = state, code
        status.finished, status.duration_seconds = finished, round(finished - started, 3)
        jobstore.write_status(job_dir, status)
        self.finished[state] = self.finished.get(state, 0) + 1
        jobstore.prune(self.data_dir, self.workload, self.keep)
        logger.info("job %s of %s: %s (exit %s)", job_id, self.workload, state, code)
        return JobResult(job_id, state, code, finished - started)

    async def _stop(self, proc: Child) -> None:
        _signal(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.grace):
                await proc.wait()
        except TimeoutError:
            _signal(proc.pid, signal.SIGKILL)
            await proc.wait()


async def _keep_output(stream: asyncio.StreamReader, path: Path) -> None:
    """Copy the job's output to ``path`` up to the cap; read and drop the rest."""
    written = 0
    with path.open("wb") as out:
        while chunk := await stream.read(65536):
            room = jobstore.MAX_LOG_BYTES - written
            if room > 0:
                out.write(chunk[:room])
                out.flush()
                written += min(room, len(chunk))


def _signal(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def completion_event(workload: str, cause: Event, result: JobResult) -> Event:
    """``eventing.job.succeeded`` / ``eventing.job.failed`` for a finished job."""
    ok = result.state == "succeeded"
    data = {
        "jobId": result.job_id,
        "workload": workload,
        "state": result.state,
        "exitCode": result.exit_code,
        "durationSeconds": round(result.duration, 3),
        "event": {"id": cause.id, "source": cause.source, "type": cause.type},
    }
    namespace, _, name = workload.partition("/")
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": result.reply_id or str(uuid.uuid4()),
        "source": f"/apis/eventing.local/v1alpha1/namespaces/{namespace}/workloads/{name}",
        "type": SUCCEEDED if ok else FAILED,
        "subject": cause.id,
        "datacontenttype": "application/json",
    }
    return Event(attributes, json.dumps(data).encode())


class JobSink:
    """The delivery target of one trigger whose subscriber is a job workload."""

    def __init__(self, runner: JobRunner, publish: Publish | None = None) -> None:
        """``runner``: local subprocesses (:class:`LocalJobRunner`) or Kubernetes Jobs
        (:class:`eventing.kube.jobs.KubeJobRunner`); the outcome rules are the same."""
        self.runner = runner
        self.publish = publish
        self.target = f"jobs:{runner.workload}"

    async def wait_ready(self) -> None:
        return None

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        try:
            result = await self.runner.run(event, timeout)
        except JobError as exc:
            return Outcome(None, error=f"job of {self.runner.workload}: {exc}")
        reply = completion_event(self.runner.workload, event, result)
        if result.state == "succeeded":
            return Outcome(200, reply=reply)
        if self.publish is not None:
            await self.publish(reply)
        if result.state == "cancelled":
            return Outcome(200)  # asked to stop: not a failure to retry
        why = "timed out" if result.state == "timeout" else f"exited with {result.exit_code}"
        return Outcome(500, error=f"job {result.job_id} {why}")

    async def close(self) -> None:
        return None
