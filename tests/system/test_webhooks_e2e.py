"""Webhook sources end to end over loopback: a signed GitHub or GitLab delivery posted
to the running system's ingress reaches a trigger's subscriber as the CloudEvent of
the testdata README table; a bad signature or token is refused with 401 and nothing
is stored."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import aiohttp
import pytest

from eventing.events import canonical
from tests.conftest import TESTDATA, SystemFactory
from tests.support.mesh import stored_events
from tests.support.subscriber import RecordingSubscriber
from tests.unit.webhooks.test_github_source import EXPECTED as GITHUB
from tests.unit.webhooks.test_gitlab_source import EXPECTED as GITLAB

SECRET = "e2e-github-secret"
TOKEN = "e2e-gitlab-token"


def manifests(url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {{name: repo}}
spec:
  ownerAndRepository: Codertocat/Hello-World
  eventTypes: ["*"]
  secretToken: {{secretKeyRef: {{name: gh, key: secret}}}}
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitLabSource
metadata: {{name: project}}
spec:
  projectUrl: https://gitlab.example.com/group/app
  secretToken: {{secretKeyRef: {{name: gl, key: token}}}}
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: github}}
spec:
  broker: default
  filters: [{{prefix: {{type: dev.knative.source.github.}}}}]
  subscriber: {{uri: "{url}/github"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: gitlab}}
spec:
  broker: default
  filters: [{{prefix: {{type: dev.knative.sources.gitlab.}}}}]
  subscriber: {{uri: "{url}/gitlab"}}
"""


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTING_SECRET_GH_SECRET", SECRET)
    monkeypatch.setenv("EVENTING_SECRET_GL_TOKEN", TOKEN)


def github_headers(event: str, body: bytes, delivery: str, secret: str = SECRET) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={signature}",
    }


@pytest.mark.usefixtures("secrets")
async def test_every_github_payload_arrives_as_the_table_says(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(subscriber.url))
    url = f"{running.ingress_url}/webhooks/default/repo"
    sent: dict[str, tuple[str, str, str, dict[str, object]]] = {}
    async with aiohttp.ClientSession() as http:
        for file, event, subject, extensions in GITHUB:
            body = (TESTDATA / "github-webhooks" / file).read_bytes()
            delivery = str(uuid.uuid4())
            async with http.post(
                url, data=body, headers=github_headers(event, body, delivery)
            ) as r:
                assert r.status == 202, (file, await r.text())
            sent[delivery] = (file, event, subject, extensions)
    events = await subscriber.wait_count(len(GITHUB), path="/github")
    for received in events:
        file, event, subject, extensions = sent[received.id]
        body = (TESTDATA / "github-webhooks" / file).read_bytes()
        assert received.type == f"dev.knative.source.github.{event}"
        assert received.source == "https://github.com/Codertocat/Hello-World"
        assert received.attributes.get("subject") == subject, file
        assert received.data == body  # the exact bytes GitHub signed
        for name, value in extensions.items():
            assert received.attributes.get(name) == canonical(value), (file, name)  # type: ignore[arg-type]


@pytest.mark.usefixtures("secrets")
@pytest.mark.parametrize("mutation", ["bad-secret", "missing", "other-body"])
async def test_bad_github_signatures_are_refused_and_nothing_is_stored(
    system: SystemFactory, subscriber: RecordingSubscriber, mutation: str
) -> None:
    running = await system(manifests(subscriber.url))
    body = (TESTDATA / "github-webhooks" / "push" / "payload.json").read_bytes()
    headers = github_headers(
        "push", body, str(uuid.uuid4()), "wrong" if mutation == "bad-secret" else SECRET
    )
    if mutation == "missing":
        del headers["X-Hub-Signature-256"]
    sent = body + b" " if mutation == "other-body" else body  # replayed with another body
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{running.ingress_url}/webhooks/default/repo", data=sent, headers=headers) as r,
    ):
        assert r.status == 401
        assert SECRET not in await r.text()
    assert stored_events(running, "default/default") == 0
    assert running.system.triggers["default/github"].subscription.cached_backlog() == 0


@pytest.mark.usefixtures("secrets")
async def test_every_gitlab_payload_arrives_typed_from_its_header(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(subscriber.url))
    url = f"{running.ingress_url}/webhooks/default/project"
    async with aiohttp.ClientSession() as http:
        for file, header, _ in GITLAB:
            body = (TESTDATA / "gitlab-webhooks" / file).read_bytes()
            headers = {
                "Content-Type": "application/json",
                "X-Gitlab-Event": header,
                "X-Gitlab-Token": TOKEN,
                "X-Gitlab-Event-UUID": f"uuid-{file}",
            }
            async with http.post(url, data=body, headers=headers) as r:
                assert r.status == 202, (file, await r.text())
        async with http.post(
            url, data=b"{}", headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}
        ) as r:
            assert r.status == 401
    events = await subscriber.wait_count(len(GITLAB), path="/gitlab")
    by_id = {e.id: e for e in events}
    for file, header, suffix in GITLAB:
        event = by_id[f"uuid-{file}"]
        assert event.type == f"dev.knative.sources.gitlab.{suffix}"
        assert event.source == "https://gitlab.example.com/group/app"
        assert event.attributes["comgitlabevent"] == header
        assert event.data == (TESTDATA / "gitlab-webhooks" / file).read_bytes()
