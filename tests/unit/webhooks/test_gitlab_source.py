"""GitLabSource: every upstream payload yields Knative's CloudEvent type; token,
header and event-type rules; ids from GitLab's headers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from eventing.events import validate
from sources import gitlab
from tests.unit.webhooks.support import BROKER_SINK, GITLAB_DATA, RecordingEmit, request, utc

TOKEN = "gl-secret-token"
PROJECT = "https://gitlab.example.com/group/app"
EVENT_UUID = "3f2c6d4e-6b7a-4c2b-9d7e-0a1b2c3d4e5f"
NOW = utc(2024, 5, 1, 12, 0, 0)

# (file, X-Gitlab-Event, CE type suffix): the testdata README table, every file.
EXPECTED = [
    ("push-event.json", "Push Hook", "push"),
    ("tag-event.json", "Tag Push Hook", "tag_push"),
    ("issue-event.json", "Issue Hook", "issue"),
    ("merge-request-event.json", "Merge Request Hook", "merge_request"),
    ("comment-issue-event.json", "Note Hook", "note"),
    ("comment-merge-request-event.json", "Note Hook", "note"),
    ("pipeline-event.json", "Pipeline Hook", "pipeline"),
    ("build-event.json", "Job Hook", "job"),
    ("deployment-event.json", "Deployment Hook", "deployment"),
    ("release-event.json", "Release Hook", "release"),
    ("wikipage-event.json", "Wiki Page Hook", "wiki_page"),
    ("system-push-event.json", "System Hook", "system"),
]


def make_source(event_types: list[str] | None = None) -> gitlab.GitLabSource:
    return gitlab.GitLabSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1alpha1",
            "kind": "GitLabSource",
            "metadata": {"name": "app", "namespace": "ci"},
            "spec": {
                "projectUrl": PROJECT,
                "eventTypes": event_types or [],
                "secretToken": {"secretKeyRef": {"name": "gitlab-secret", "key": "token"}},
                "sink": BROKER_SINK,
            },
        }
    )


def make_adapter(source: gitlab.GitLabSource | None = None) -> gitlab.GitLabAdapter:
    env = {"EVENTING_SECRET_GITLAB_SECRET_TOKEN": TOKEN}
    return gitlab.build(source or make_source(), environ=env, now=lambda: NOW)


def hook(body: bytes, event: str | None, *, token: str | None = TOKEN, **extra: str) -> Any:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event-UUID": EVENT_UUID, **extra}
    if event is not None:
        headers["X-Gitlab-Event"] = event
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return request(body, headers)


def test_the_table_covers_every_payload_file() -> None:
    assert {p.name for p in GITLAB_DATA.glob("*.json")} == {row[0] for row in EXPECTED}


@pytest.mark.parametrize(("file", "header", "kind"), EXPECTED, ids=[r[0] for r in EXPECTED])
async def test_payload_yields_knatives_cloudevent(file: str, header: str, kind: str) -> None:
    body = (GITLAB_DATA / file).read_bytes()
    emit = RecordingEmit()
    response = await make_adapter().handle(hook(body, header), emit)
    assert response.status == 202, response.body
    [stored] = emit.events
    assert stored.attributes == {
        "specversion": "1.0",
        "id": EVENT_UUID,
        "source": PROJECT,
        "type": f"dev.knative.sources.gitlab.{kind}",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
        "comgitlabevent": header,
    }
    assert stored.data == body
    validate(stored.attributes)


BODY = (GITLAB_DATA / "push-event.json").read_bytes()


@pytest.mark.parametrize("token", [None, "wrong", "", TOKEN + " ", TOKEN.upper()])
async def test_wrong_or_missing_token_answers_401(token: str | None) -> None:
    emit = RecordingEmit()
    response = await make_adapter().handle(hook(BODY, "Push Hook", token=token), emit)
    assert response.status == 401
    assert emit.calls == 0


@pytest.mark.parametrize("header", [None, "Push", "push hook", "Push Hook\n", "Hook", "P!sh Hook"])
async def test_event_header_that_is_not_kind_hook_answers_400(header: str | None) -> None:
    emit = RecordingEmit()
    response = await make_adapter().handle(hook(BODY, header), emit)
    assert response.status == 400
    assert emit.calls == 0


def test_event_kind_mapping() -> None:
    assert gitlab.event_kind("Merge Request Hook") == "merge_request"
    assert gitlab.event_kind("Confidential Note Hook") == "confidential_note"
    assert gitlab.hook_setting("merge_request") == "merge_requests_events"
    assert gitlab.hook_setting("job") == gitlab.hook_setting("build") == "job_events"
    assert gitlab.hook_setting("wiki_page") == "wiki_page_events"


async def test_id_falls_back_to_idempotency_key_then_a_fresh_uuid() -> None:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": TOKEN}
    emit = RecordingEmit()
    adapter = make_adapter()
    await adapter.handle(request(BODY, {**headers, "Idempotency-Key": "key-1"}), emit)
    await adapter.handle(request(BODY, headers), emit)
    assert emit.events[0].id == "key-1"
    assert uuid.UUID(emit.events[1].id).version == 4


async def test_event_types_filter_answers_200_and_counts() -> None:
    adapter = make_adapter(make_source(["push_events", "job_events"]))
    emit = RecordingEmit()
    merge = (GITLAB_DATA / "merge-request-event.json").read_bytes()
    build = (GITLAB_DATA / "build-event.json").read_bytes()
    dropped = await adapter.handle(hook(merge, "Merge Request Hook"), emit)
    kept = await adapter.handle(hook(BODY, "Push Hook"), emit)
    job = await adapter.handle(hook(build, "Job Hook"), emit)
    assert (dropped.status, kept.status, job.status) == (200, 202, 202)
    assert [e.type for e in emit.events] == [
        "dev.knative.sources.gitlab.push",
        "dev.knative.sources.gitlab.job",
    ]
    assert adapter.drops["event_type_not_subscribed"] == 1


async def test_body_that_is_not_json_answers_400() -> None:
    response = await make_adapter().handle(hook(b"not json", "Push Hook"), RecordingEmit())
    assert response.status == 400


async def test_store_error_answers_503_then_the_retry_succeeds() -> None:
    adapter = make_adapter()
    emit = RecordingEmit(fail=1)
    first = await adapter.handle(hook(BODY, "Push Hook"), emit)
    second = await adapter.handle(hook(BODY, "Push Hook"), emit)
    assert (first.status, second.status) == (503, 202)
    assert "Retry-After" in first.headers
    assert [e.id for e in emit.events] == [EVENT_UUID]


def test_adapter_shape() -> None:
    adapter = make_adapter()
    assert adapter.path == "/webhooks/ci/app"
    assert adapter.broker == "ci/default"
    assert TOKEN not in repr(adapter)
