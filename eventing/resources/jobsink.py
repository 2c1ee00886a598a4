"""Knative's ``JobSink`` (``sinks.knative.dev/v1alpha1``): one ``batch/v1`` Job per
event, loaded as the job Workload it stands for.

Why a derivation and not a runtime of its own: a JobSink is exactly a Workload with
``jobs`` (default parallelism and keep) and a ``jobTemplate`` (its ``spec.job``), so it
runs through the same runner (:mod:`eventing.kube.jobs`) and the same rules; a
Trigger's subscriber may name it (``kind: JobSink``). Differences from Knative: the
delivery waits for the Job to finish and its reply is ``eventing.job.succeeded`` (Knative
answers 202 at once and reports nothing), and at most ``jobs.parallelism`` (1) Jobs run
at once; for other limits write the Workload. See docs/kubernetes.md "Jobs per event".
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import ValidationError

from eventing.resources.base import Model, Resource
from eventing.resources.workload import JobTemplate, Workload

SINKS_V1ALPHA1: Final = "sinks.knative.dev/v1alpha1"


class JobSinkSpec(Model):
    job: JobTemplate
    """The Job each event gets (Knative: a ``batch/v1`` Job)."""


class JobSink(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (SINKS_V1ALPHA1,)
    KIND: ClassVar[str] = "JobSink"

    api_version: Literal["sinks.knative.dev/v1alpha1"]
    kind: Literal["JobSink"]
    spec: JobSinkSpec


class JobSinkError(ValueError):
    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


def derive_workload(resource: Resource, lookup: Any) -> Resource:
    """The loader's derivation hook (see ``KindRegistry.derivations``)."""
    assert isinstance(resource, JobSink)
    doc = {
        "apiVersion": "eventing.local/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": resource.name, "namespace": resource.namespace},
        "spec": {
            "jobs": {},
            "jobTemplate": resource.spec.job.model_dump(by_alias=True, exclude_none=True),
        },
    }
    try:
        return Workload.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise JobSinkError("spec.job", None, f"{path}: {first['msg']}") from None
