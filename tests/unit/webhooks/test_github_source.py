"""GitHubSource: every upstream payload yields Knative's CloudEvent; authentication,
header and status-code rules; a refused store is retried by the sender."""

from __future__ import annotations

from typing import Any

import pytest

from eventing.errors import ConfigError
from eventing.events import validate
from sources.github import adapter as github
from sources.support.signatures import sha256_signature
from tests.unit.webhooks.support import (
    BROKER_SINK,
    GITHUB_DATA,
    RecordingEmit,
    request,
    utc,
)

SECRET = b"gh-webhook-secret"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
NOW = utc(2024, 5, 1, 12, 0, 0)
REPO = {"owner": "Codertocat", "repository": "Hello-World", "sender": "Codertocat"}

# (file, X-GitHub-Event, subject, extensions): the testdata README table, every file.
EXPECTED: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "push/payload.json",
        "push",
        "6113728f27ae...000000000000",
        {
            **REPO,
            "pusher": "Codertocat",
            "ref": "refs/tags/simple-tag",
            "created": False,
            "deleted": True,
            "forced": False,
        },
    ),
    (
        "push/with-new-branch.payload.json",
        "push",
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        {
            **REPO,
            "installation": 1,
            "pusher": "Codertocat",
            "ref": "refs/heads/master",
            "created": True,
            "deleted": False,
            "forced": False,
        },
    ),
    (
        "pull_request/opened.payload.json",
        "pull_request",
        "2",
        {**REPO, "installation": 1, "action": "opened", "number": 2},
    ),
    (
        "pull_request/closed.payload.json",
        "pull_request",
        "2",
        {**REPO, "installation": 1, "action": "closed", "number": 2},
    ),
    (
        "pull_request/synchronize.payload.json",
        "pull_request",
        "2",
        {**REPO, "installation": 1, "action": "synchronize", "number": 2},
    ),
    ("issues/opened.payload.json", "issues", "1", {**REPO, "action": "opened"}),
    ("issues/labeled.payload.json", "issues", "1", {**REPO, "action": "labeled", "label": "bug"}),
    (
        "issue_comment/created.payload.json",
        "issue_comment",
        "1#issuecomment-492700400",
        {**REPO, "action": "created"},
    ),
    (
        "ping/payload.json",
        "ping",
        "109948940",
        {"owner": "Octocoders", "repository": "Hello-World", "sender": "Codertocat"},
    ),
    (
        "ping/with-organization.payload.json",
        "ping",
        "109948940",
        {"owner": "Octocoders", "sender": "Codertocat"},
    ),
    ("release/published.payload.json", "release", "0.0.1", {**REPO, "action": "published"}),
    ("create/payload.json", "create", "tag", {**REPO, "ref": "simple-tag"}),
    ("delete/payload.json", "delete", "tag", {**REPO, "ref": "simple-tag"}),
    ("check_run/completed.payload.json", "check_run", "128620228", {**REPO, "action": "completed"}),
]


def make_source(event_types: list[str] | None = None, **meta: Any) -> github.GitHubSource:
    return github.GitHubSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1alpha1",
            "kind": "GitHubSource",
            "metadata": {"name": "repo", **meta},
            "spec": {
                "ownerAndRepository": "Codertocat/Hello-World",
                "eventTypes": event_types or ["*"],
                "secretToken": {"secretKeyRef": {"name": "github-secret", "key": "token"}},
                "sink": BROKER_SINK,
            },
        }
    )


def make_adapter(source: github.GitHubSource | None = None) -> github.GitHubAdapter:
    env = {"EVENTING_SECRET_GITHUB_SECRET_TOKEN": SECRET.decode()}
    return github.build(source or make_source(), environ=env, now=lambda: NOW)


def delivery(
    body: bytes, event: str, *, secret: bytes = SECRET, extra: dict[str, str] | None = None
) -> Any:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": DELIVERY,
        "X-Hub-Signature-256": sha256_signature(secret, body),
        **(extra or {}),
    }
    return request(body, headers)


def test_the_table_covers_every_payload_file() -> None:
    files = {str(p.relative_to(GITHUB_DATA)) for p in GITHUB_DATA.glob("*/*.json")}
    assert files == {row[0] for row in EXPECTED} | {"workflow_run/completed.payload.json"}


@pytest.mark.parametrize(
    ("file", "event", "subject", "extensions"), EXPECTED, ids=[row[0] for row in EXPECTED]
)
async def test_payload_yields_knatives_cloudevent(
    file: str, event: str, subject: str, extensions: dict[str, Any]
) -> None:
    body = (GITHUB_DATA / file).read_bytes()
    emit = RecordingEmit()
    response = await make_adapter().handle(delivery(body, event), emit)
    assert response.status == 202, response.body
    [stored] = emit.events
    assert stored.attributes == {
        "specversion": "1.0",
        "id": DELIVERY,
        "source": "https://github.com/Codertocat/Hello-World",
        "type": f"dev.knative.source.github.{event}",
        "subject": subject,
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
        **extensions,
    }
    assert stored.data == body  # the exact bytes, never re-encoded
    validate(stored.attributes)


async def test_workflow_run_is_not_a_knative_event_and_answers_404() -> None:
    body = (GITHUB_DATA / "workflow_run/completed.payload.json").read_bytes()
    emit = RecordingEmit()
    response = await make_adapter().handle(delivery(body, "workflow_run"), emit)
    assert response.status == 404
    assert emit.calls == 0


PUSH = (GITHUB_DATA / "push/payload.json").read_bytes()


@pytest.mark.parametrize(
    "signature",
    [
        None,  # missing
        sha256_signature(b"another secret", PUSH),  # wrong secret
        sha256_signature(SECRET, b'{"replayed": "with another body"}'),  # other body
        "sha256=" + "0" * 64,
        "sha256=not-hex",
        "sha1=" + "0" * 40,
        sha256_signature(SECRET, PUSH).removeprefix("sha256="),  # no prefix
    ],
    ids=["missing", "wrong-secret", "other-body", "zeros", "not-hex", "sha1", "no-prefix"],
)
async def test_bad_signatures_answer_401_and_store_nothing(signature: str | None) -> None:
    req = delivery(PUSH, "push")
    headers = {k: v for k, v in req.headers.items() if k != "x-hub-signature-256"}
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    emit = RecordingEmit()
    adapter = make_adapter()
    response = await adapter.handle(request(PUSH, headers), emit)
    assert response.status == 401
    assert emit.calls == 0
    assert adapter.health.refused == 1


async def test_legacy_sha1_header_alone_is_not_enough() -> None:
    req = delivery(PUSH, "push")
    headers = {k: v for k, v in req.headers.items() if k != "x-hub-signature-256"}
    headers["x-hub-signature"] = "sha1=0000000000000000000000000000000000000000"
    response = await make_adapter().handle(request(PUSH, headers), RecordingEmit())
    assert response.status == 401


async def test_upper_case_hex_signature_is_accepted() -> None:
    upper = "sha256=" + sha256_signature(SECRET, PUSH).removeprefix("sha256=").upper()
    response = await make_adapter().handle(
        delivery(PUSH, "push", extra={"X-Hub-Signature-256": upper}), RecordingEmit()
    )
    assert response.status == 202


@pytest.mark.parametrize("missing", ["x-github-event", "x-github-delivery"])
async def test_missing_github_headers_answer_400(missing: str) -> None:
    req = delivery(PUSH, "push")
    headers = {k: v for k, v in req.headers.items() if k != missing}
    emit = RecordingEmit()
    response = await make_adapter().handle(request(PUSH, headers), emit)
    assert response.status == 400
    assert emit.calls == 0


async def test_unsubscribed_event_is_answered_200_and_counted() -> None:
    adapter = make_adapter(make_source(["pull_request"]))
    emit = RecordingEmit()
    response = await adapter.handle(delivery(PUSH, "push"), emit)
    assert response.status == 200
    assert b"ignored" in response.body
    assert emit.calls == 0
    assert adapter.drops["event_type_not_subscribed"] == 1


async def test_ping_is_stored_even_when_not_subscribed() -> None:
    body = (GITHUB_DATA / "ping/payload.json").read_bytes()
    emit = RecordingEmit()
    response = await make_adapter(make_source(["push"])).handle(delivery(body, "ping"), emit)
    assert response.status == 202
    assert emit.events[0].type == "dev.knative.source.github.ping"


async def test_form_encoded_delivery_stores_the_payload_field() -> None:
    from urllib.parse import urlencode

    form = urlencode({"payload": PUSH.decode()}).encode()
    emit = RecordingEmit()
    response = await make_adapter().handle(
        delivery(form, "push", extra={"Content-Type": "application/x-www-form-urlencoded"}), emit
    )
    assert response.status == 202
    assert emit.events[0].data == PUSH
    assert emit.events[0].datacontenttype == "application/json"


async def test_store_error_answers_503_and_the_retry_succeeds_with_the_same_id() -> None:
    adapter = make_adapter()
    emit = RecordingEmit(fail=1)
    first = await adapter.handle(delivery(PUSH, "push"), emit)
    assert first.status == 503
    assert first.headers["Retry-After"] == "3"
    assert emit.events == []
    second = await adapter.handle(delivery(PUSH, "push"), emit)
    assert second.status == 202
    assert [e.id for e in emit.events] == [DELIVERY]
    assert adapter.health.failed == 1
    assert adapter.health.emitted == 1


async def test_method_and_size_bounds() -> None:
    source = make_source(annotations={"eventing.local/max-body-bytes": "100"})
    adapter = make_adapter(source)
    assert adapter.max_body_bytes == 100
    too_big = await adapter.handle(delivery(PUSH, "push"), RecordingEmit())
    assert too_big.status == 413
    get = await adapter.handle(request(b"", method="GET"), RecordingEmit())
    assert get.status == 405
    assert get.headers["Allow"] == "POST"


async def test_default_limit_is_githubs_25_mb_and_path_is_namespaced() -> None:
    adapter = make_adapter()
    assert adapter.max_body_bytes == 25 * 1024 * 1024
    assert adapter.path == "/webhooks/default/repo"
    assert adapter.broker == "default/default"


async def test_ce_overrides_are_added() -> None:
    source = make_source()
    data = source.model_dump(by_alias=True)
    data["spec"]["ceOverrides"] = {"extensions": {"team": "platform"}}
    emit = RecordingEmit()
    await make_adapter(github.GitHubSource.model_validate(data)).handle(
        delivery(PUSH, "push"), emit
    )
    assert emit.events[0].attributes["team"] == "platform"


async def test_secret_never_shows_in_repr_health_or_responses() -> None:
    adapter = make_adapter()
    bad = await adapter.handle(delivery(PUSH, "push", secret=b"wrong"), RecordingEmit())
    for text in (repr(adapter), repr(adapter.health), repr(adapter._secret), bad.body.decode()):
        assert SECRET.decode() not in text


def test_missing_secret_is_a_load_time_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        github.build(make_source(), environ={})
    message = str(info.value)
    assert "github-secret" in message
    assert "EVENTING_SECRET_GITHUB_SECRET_TOKEN" in message
    assert "spec.secretToken" in message
