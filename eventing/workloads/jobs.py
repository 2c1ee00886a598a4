"""What every job runner shares (one job per event: local subprocesses in
:mod:`sinks.job`, Kubernetes ``Job`` objects in :mod:`eventing.kube.jobs`).

Why a protocol here and not in the sink: the Kubernetes runner lives under
``eventing.kube`` (the only place that talks to the API server), which may not import
the plugins in ``sinks``; both runners return the same :class:`JobResult`, and the job
sink, the status document and the composition root see only :class:`JobRunner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from eventing.events import Event

JobState = Literal["running", "succeeded", "failed", "timeout", "cancelled"]


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    state: JobState
    exit_code: int | None
    duration: float
    reply_id: str | None = None
    """The id the completion event carries; ``None``: a fresh one. The Kubernetes
    runner derives it from the Job's name, so a redelivered event whose Job already
    finished answers with the same reply (a deduplicating broker stores it once)."""


class JobRunner(Protocol):
    """Runs the jobs of one workload (``namespace/name``); shared by every trigger
    that delivers to it."""

    workload: str
    parallelism: int
    running: int
    """Jobs of this process started and not finished."""
    queued: int
    """Events of this process waiting for a free place (``parallelism``) to start."""
    finished: dict[str, int]
    """Finished jobs by state, since start."""

    async def run(self, event: Event, timeout: float) -> JobResult:
        """Run (or, for an event whose job exists, follow) the job of ``event`` to its
        end; ``timeout`` is the trigger's delivery timeout (the workload's
        ``timeoutSeconds`` wins)."""
        ...


class JobError(Exception):
    """A job could not be started or followed (e.g. the API server did not answer):
    the delivery attempt fails and the trigger's delivery spec retries it."""
