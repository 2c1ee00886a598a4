"""The Job made for one event (eventing/kube/jobspec.py) and the Workload's
``jobTemplate`` validation: names, labels, the event Secret, defaults, and reading
Kubernetes' answer (state, exit code, duration)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError

from eventing.events import Event
from eventing.kube import jobspec
from eventing.resources.workload import WorkloadSpec

TEMPLATE: dict[str, Any] = {
    "template": {
        "metadata": {"annotations": {"a": "1"}},
        "spec": {"containers": [{"name": "build", "image": "builder:1", "env": [{"name": "X"}]}]},
    }
}


def event(event_id: str = "e-1", source: str = "/src") -> Event:
    return Event(
        {"specversion": "1.0", "id": event_id, "source": source, "type": "push", "subject": "s"},
        b"{}",
    )


def test_names_are_per_event_and_attempt_and_fit_a_label() -> None:
    a, b = jobspec.event_hash(event("1")), jobspec.event_hash(event("2"))
    assert a != b
    assert jobspec.event_hash(event("1")) == a  # redelivery: same Job
    # (source, id) is one identity: moving characters between them is another event
    assert jobspec.event_hash(event("b", "/a")) != jobspec.event_hash(event("", "/ab"))
    assert jobspec.job_name("build", a, 1) == f"build-{a}-1"
    long = jobspec.job_name("w" * 63, a, 12)
    assert len(long) == 63
    assert long.endswith(f"-{a}-12")


def test_the_job_carries_the_event_as_knative_jobsink_does() -> None:
    job = jobspec.build_job(
        {"labels": {"team": "ci"}, "annotations": {}},
        TEMPLATE,
        name="build-x-1",
        workload_name="build",
        event=event(),
        ehash="x",
        attempt=1,
        timeout=90.5,
    )
    meta = job["metadata"]
    assert meta["labels"] == {
        "team": "ci",
        jobspec.LABEL_WORKLOAD: "build",
        jobspec.LABEL_EVENT: "x",
        jobspec.LABEL_ATTEMPT: "1",
    }
    assert meta["annotations"][jobspec.ANNOTATION_EVENT["id"]] == "e-1"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 91)
    pod = spec["template"]
    assert pod["metadata"]["labels"][jobspec.LABEL_EVENT] == "x"
    assert pod["metadata"]["annotations"] == {"a": "1"}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["volumes"] == [
        {"name": "jobsink-event", "secret": {"secretName": "build-x-1"}}
    ]
    (container,) = pod["spec"]["containers"]
    assert container["volumeMounts"] == [
        {"name": "jobsink-event", "mountPath": "/etc/jobsink-event", "readOnly": True}
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env == {
        "X": None,
        "K_EVENT_PATH": "/etc/jobsink-event",
        "K_EVENT_FILE": "/etc/jobsink-event/event",
        "K_EVENT_ID": "e-1",
        "K_EVENT_SOURCE": "/src",
        "K_EVENT_TYPE": "push",
        "K_EVENT_SUBJECT": "s",
    }
    assert "volumes" not in TEMPLATE["template"]["spec"]  # the template is not changed

    secret = jobspec.build_secret({**job, "metadata": {**meta}}, "uid-1", b'{"id":"e-1"}')
    assert secret["metadata"]["name"] == "build-x-1"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert secret["immutable"] is True
    assert json.loads(base64.b64decode(secret["data"]["event"])) == {"id": "e-1"}


def test_the_template_keeps_its_own_limits_and_mount() -> None:
    template = json.loads(json.dumps(TEMPLATE))
    template["backoffLimit"] = 2
    template["activeDeadlineSeconds"] = 30
    template["ttlSecondsAfterFinished"] = 0
    c = template["template"]["spec"]["containers"][0]
    c["volumeMounts"] = [{"name": "jobsink-event", "mountPath": "/in"}]
    job = jobspec.build_job(
        {}, template, name="n", workload_name="w", event=event(), ehash="h", attempt=2, timeout=600
    )
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (2, 30)
    # raised, so the result is read before the TTL controller deletes the Job
    assert job["spec"]["ttlSecondsAfterFinished"] == jobspec.MIN_TTL_AFTER_FINISHED
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (env["K_EVENT_PATH"], env["K_EVENT_FILE"]) == ("/in", "/in/event")


def condition(kind: str, reason: str = "", at: str = "2026-01-01T00:00:09Z") -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "lastTransitionTime": at}


@pytest.mark.parametrize(
    ("status", "deleting", "state"),
    [
        ({}, False, "running"),
        ({"conditions": [condition("SuccessCriteriaMet")]}, False, "running"),
        ({"conditions": [condition("Complete")]}, False, "succeeded"),
        ({"conditions": [condition("Failed", "BackoffLimitExceeded")]}, False, "failed"),
        ({"conditions": [condition("Failed", "DeadlineExceeded")]}, False, "timeout"),
        ({}, True, "cancelled"),
    ],
)
def test_job_state(status: dict[str, Any], deleting: bool, state: str) -> None:
    meta = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
    assert jobspec.job_state({"metadata": meta, "status": status}) == state


def test_duration_and_exit_code() -> None:
    done = {
        "status": {"startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:00:04Z"}
    }
    assert jobspec.job_duration(done) == 3.0
    failed = {
        "status": {
            "startTime": "2026-01-01T00:00:01Z",
            "conditions": [condition("Failed", at="2026-01-01T00:00:09Z")],
        }
    }
    assert jobspec.job_duration(failed) == 8.0
    assert jobspec.job_duration({"status": {"startTime": "2026-01-01T00:00:01Z"}}) is None

    def pod(created: str, *codes: int) -> dict[str, Any]:
        statuses = [{"state": {"terminated": {"exitCode": c}}} for c in codes]
        return {
            "metadata": {"creationTimestamp": created},
            "status": {"containerStatuses": statuses},
        }

    assert jobspec.exit_code([]) is None
    assert jobspec.exit_code([pod("2026-01-01T00:00:01Z", 0, 0)]) == 0
    assert jobspec.exit_code([pod("2026-01-01T00:00:01Z", 0, 3)]) == 3
    assert jobspec.exit_code([pod("2026-01-01T00:00:02Z", 0), pod("2026-01-01T00:00:01Z", 1)]) == 0
    running: dict[str, Any] = {
        "metadata": {},
        "status": {"containerStatuses": [{"state": {"running": {}}}]},
    }
    assert jobspec.exit_code([running]) is None


def test_job_template_validation() -> None:
    ok = {"jobs": {}, "jobTemplate": {"spec": TEMPLATE}}
    spec = WorkloadSpec.model_validate(ok)
    assert spec.job_template is not None
    with pytest.raises(ValidationError, match="goes with 'jobs'"):
        WorkloadSpec.model_validate({"jobTemplate": {"spec": TEMPLATE}})
    with pytest.raises(ValidationError, match="give one of"):
        WorkloadSpec.model_validate({**ok, "command": ["x"]})
    with pytest.raises(ValidationError, match="at least one container"):
        WorkloadSpec.model_validate({"jobs": {}, "jobTemplate": {"spec": {"template": {}}}})
    bad_policy = json.loads(json.dumps(TEMPLATE))
    bad_policy["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ValidationError, match="Never or OnFailure"):
        WorkloadSpec.model_validate({"jobs": {}, "jobTemplate": {"spec": bad_policy}})
    with pytest.raises(ValidationError, match="pod template"):
        WorkloadSpec.model_validate({**ok, "env": [{"name": "A", "value": "1"}]})
