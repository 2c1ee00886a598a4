"""One Kubernetes ``Job`` per event: the runner behind a job workload with a
``jobTemplate`` when eventing runs with ``--kubernetes``.

:meth:`KubeJobRunner.run` is one delivery attempt. It lists the workload's Jobs (one
consistent LIST, labels from :mod:`eventing.kube.jobspec`) and then:

- the event already has a running Job (a redelivery, e.g. after eventing restarted):
  follow that Job, start nothing;
- the event already has a Job that completed: answer with its result, start nothing;
- otherwise, when fewer than ``parallelism`` of the workload's Jobs are active, create
  the next attempt's Job and then its event Secret (owned by the Job); when the limit
  is reached, wait (re-checking every poll) without burning a delivery retry. The
  count comes from the API server, so Jobs left running by an earlier eventing
  process count too; one lock per runner makes count-then-create atomic here.

Then it polls the workload's Jobs (one LIST per poll interval, shared by every job
being followed) until the Job has a terminal condition: ``Complete`` (succeeded),
``Failed`` (failed, or timeout when the reason is ``DeadlineExceeded``, i.e. past
``activeDeadlineSeconds``), or the Job is gone or being deleted (cancelled: ``eventing
jobs cancel`` deletes it). The exit code comes from the Job's pods' container
statuses (one LIST of the Job's pods), the duration from the Job's start and end times.

A finished Job stays for ``eventing jobs list|logs``; beyond ``keep`` finished Jobs of
the workload the oldest are deleted (propagation ``Background``; their pods and
Secrets follow). A template's ``ttlSecondsAfterFinished`` also works (the TTL
controller deletes them), but a redelivered event whose Job was deleted runs again.

Every API call runs in a worker thread with a deadline (:data:`CALL_DEADLINE`); a
failed call ends the attempt with :class:`JobError` (retried by the delivery spec).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from eventing.codec.jsonformat import to_json_bytes
from eventing.events import Event
from eventing.kube import jobspec
from eventing.kube.api import KubeApi, KubeError
from eventing.workloads.jobs import JobError, JobResult, JobState

logger = logging.getLogger(__name__)

CALL_DEADLINE = 15.0
POLL_INTERVAL = 0.5
DEADLINE_SLACK = 60.0
"""How long past ``activeDeadlineSeconds`` we wait for the Job controller to fail a
Job before deleting it ourselves and reporting a timeout."""
PRUNE_AFTER = 30.0
"""A finished Job is never pruned sooner than this (its follower may not have seen it)."""

T = TypeVar("T")


class KubeJobRunner:
    """Runs the jobs of one workload as Kubernetes Jobs (a
    :class:`~eventing.workloads.jobs.JobRunner`)."""

    def __init__(
        self,
        workload: str,
        template_meta: dict[str, dict[str, str]],
        template_spec: dict[str, Any],
        api: Callable[[], KubeApi],
        *,
        parallelism: int = 1,
        keep: int = 100,
        timeout: float | None = None,
        poll_interval: float = POLL_INTERVAL,
        extra_labels: dict[str, str] | None = None,
    ) -> None:
        """``api`` gives the shared connection (blocking: called in a worker thread)."""
        self.workload = workload
        self.namespace, _, self.name = workload.partition("/")
        self.template_meta = template_meta
        self.template_spec = template_spec
        self.parallelism = parallelism
        self.keep = keep
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.extra_labels = extra_labels or {}
        self.running = 0
        self.queued = 0
        self.finished: dict[str, int] = {}
        self._api = api
        self._admit = asyncio.Lock()
        self._list_lock = asyncio.Lock()
        self._listed: list[dict[str, Any]] = []
        self._listed_at = -1e9

    async def run(self, event: Event, timeout: float) -> JobResult:
        limit = self.timeout or timeout
        self.queued += 1
        try:
            name = await self._start(event, limit)
        finally:
            self.queued -= 1
        self.running += 1
        try:
            state, job = await self._follow(name, limit)
            return await self._result(name, state, job)
        finally:
            self.running -= 1

    # -- start, or find the event's Job --------------------------------------------

    async def _start(self, event: Event, timeout: float) -> str:
        event_json = to_json_bytes(event)
        if len(event_json) > jobspec.MAX_EVENT_BYTES:
            raise JobError(
                f"event of {len(event_json)} bytes: a Job gets its event from a Secret "
                f"(at most {jobspec.MAX_EVENT_BYTES} bytes)"
            )
        ehash = jobspec.event_hash(event)
        while True:
            # Waiters at the limit look at the shared list (one LIST per poll for all of
            # them); only one that may proceed takes the lock and a fresh list.
            if not self._may_proceed(await self._jobs(max_age=self.poll_interval), ehash):
                await asyncio.sleep(self.poll_interval)
                continue
            async with self._admit:
                jobs = await self._jobs(max_age=0)
                mine = [j for j in jobs if _labels(j).get(jobspec.LABEL_EVENT) == ehash]
                for job in mine:
                    state = jobspec.job_state(job)
                    if state in ("running", "succeeded"):
                        name = str(job["metadata"]["name"])
                        if state == "running":  # its Secret may be missing after a crash
                            await self._secret(job, event_json)
                        return name
                active = sum(jobspec.job_state(j) == "running" for j in jobs)
                if active < self.parallelism:
                    attempt = 1 + max((_attempt(j) for j in mine), default=0)
                    created = await self._create(event, ehash, attempt, timeout, event_json)
                    if created is not None:
                        return created
                    continue  # created by someone else meanwhile: list again
            await asyncio.sleep(self.poll_interval)  # at the limit: poll for a free slot

    def _may_proceed(self, jobs: list[dict[str, Any]], ehash: str) -> bool:
        if any(_labels(j).get(jobspec.LABEL_EVENT) == ehash for j in jobs):
            return True
        return sum(jobspec.job_state(j) == "running" for j in jobs) < self.parallelism

    async def _create(
        self, event: Event, ehash: str, attempt: int, timeout: float, event_json: bytes
    ) -> str | None:
        name = jobspec.job_name(self.name, ehash, attempt)
        body = jobspec.build_job(
            self.template_meta,
            self.template_spec,
            name=name,
            workload_name=self.name,
            event=event,
            ehash=ehash,
            attempt=attempt,
            timeout=timeout,
            extra_labels=self.extra_labels,
        )
        try:
            created = await self._call(lambda api: api.create_job(self.namespace, body))
        except JobError as exc:
            if getattr(exc.__cause__, "status", None) == 409:
                return None
            raise
        self._listed_at = -1e9  # the next look must see it
        await self._secret(created, event_json)
        logger.info("job %s/%s created for event %s", self.namespace, name, event.id)
        return name

    async def _secret(self, job: dict[str, Any], event_json: bytes) -> None:
        secret = jobspec.build_secret(job, str(job["metadata"].get("uid", "")), event_json)
        try:
            await self._call(lambda api: api.create_secret(self.namespace, secret))
        except JobError as exc:
            if getattr(exc.__cause__, "status", None) != 409:  # 409: it exists already
                raise

    # -- follow it to its end ---------------------------------------------------------

    async def _follow(self, name: str, timeout: float) -> tuple[JobState, dict[str, Any] | None]:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            jobs = await self._jobs(max_age=self.poll_interval)
            job = next((j for j in jobs if j["metadata"]["name"] == name), None)
            if job is None:
                return "cancelled", None  # deleted: `eventing jobs cancel`, or by hand
            state = jobspec.job_state(job)
            if state != "running":
                return state, job
            if deadline is None:  # the Job's own deadline (the template may set it)
                limit = job.get("spec", {}).get("activeDeadlineSeconds")
                limit = limit if isinstance(limit, int) and limit > 0 else timeout
                deadline = loop.time() + limit + DEADLINE_SLACK
            elif loop.time() > deadline:
                await self._delete(name)
                return "timeout", job
            await asyncio.sleep(self.poll_interval)

    async def _result(self, name: str, state: JobState, job: dict[str, Any] | None) -> JobResult:
        code: int | None = None
        if state in ("succeeded", "failed"):
            selector = f"{jobspec.JOB_NAME_LABEL}={name}"
            pods = await self._call(lambda api: api.list_pods_in(self.namespace, selector))
            code = jobspec.exit_code(pods)
        duration = (jobspec.job_duration(job) if job is not None else None) or 0.0
        self.finished[state] = self.finished.get(state, 0) + 1
        logger.info("job %s/%s: %s (exit %s)", self.namespace, name, state, code)
        await self._prune()
        return JobResult(name, state, code, duration, reply_id=f"{name}.{state}")

    async def _prune(self) -> None:
        """Delete the oldest finished Jobs of the workload beyond ``keep``."""
        now = datetime.now(UTC)
        ended = []
        for job in await self._jobs(max_age=self.poll_interval):
            if jobspec.job_state(job) in ("running", "cancelled"):
                continue
            end = jobspec.job_times(job)[1]
            if end is not None and (now - end).total_seconds() >= PRUNE_AFTER:
                ended.append((end, str(job["metadata"]["name"])))
        excess = len(ended) - self.keep
        for _, name in sorted(ended)[: max(0, excess)]:
            try:
                await self._delete(name)
            except JobError as exc:
                logger.warning("could not delete finished job %s: %s", name, exc)

    # -- API calls ----------------------------------------------------------------------

    async def _delete(self, name: str) -> None:
        await self._call(lambda api: api.delete_job(self.namespace, name))

    async def _jobs(self, max_age: float) -> list[dict[str, Any]]:
        """The workload's Jobs, listed at most ``max_age`` seconds ago (one LIST shared
        by every job being followed)."""
        async with self._list_lock:
            if time.monotonic() - self._listed_at > max_age:
                selector = jobspec.selector(self.name)
                self._listed = await self._call(lambda api: api.list_jobs(self.namespace, selector))
                self._listed_at = time.monotonic()
            return self._listed

    async def _call(self, call: Callable[[KubeApi], T]) -> T:
        try:
            async with asyncio.timeout(CALL_DEADLINE):
                return await asyncio.to_thread(lambda: call(self._api()))
        except KubeError as exc:
            raise JobError(f"Kubernetes: {exc}") from exc
        except TimeoutError:
            raise JobError(f"the API server did not answer within {CALL_DEADLINE:.0f} s") from None


def _labels(job: dict[str, Any]) -> dict[str, str]:
    labels = job.get("metadata", {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _attempt(job: dict[str, Any]) -> int:
    try:
        return int(_labels(job).get(jobspec.LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0
