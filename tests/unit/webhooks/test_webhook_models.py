"""Resource models of the webhook and ping kinds, loaded through the project's loader:
every documented field parses, and each bad value is reported at its field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from eventing.resources.broker import Broker
from eventing.resources.loader import KindRegistry, LoadError, load_resources
from eventing.resources.trigger import Trigger
from eventing.resources.workload import Workload
from sources import gitlab
from sources.github import adapter as github
from sources.ping import adapter as ping
from sources.webhook import adapter as webhook

SINK = {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}
SECRET = {"secretKeyRef": {"name": "hook-secret", "key": "token"}}
BROKER = {
    "apiVersion": "eventing.knative.dev/v1",
    "kind": "Broker",
    "metadata": {"name": "default"},
}

FULL: dict[str, dict[str, Any]] = {
    "GitHubSource": {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitHubSource",
        "metadata": {"name": "gh", "annotations": {"eventing.local/max-body-bytes": "4096"}},
        "spec": {
            "ownerAndRepository": "octo/app",
            "eventTypes": ["push", "pull_request"],
            "accessToken": SECRET,
            "secretToken": SECRET,
            "githubAPIURL": "https://api.github.com/",
            "secure": True,
            "serviceAccountName": "sa",
            "sink": SINK,
            "ceOverrides": {"extensions": {"team": "a"}},
        },
    },
    "GitLabSource": {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitLabSource",
        "metadata": {"name": "gl"},
        "spec": {
            "projectUrl": "https://gitlab.com/group/app",
            "eventTypes": ["push_events", "merge_requests_events"],
            "accessToken": SECRET,
            "secretToken": SECRET,
            "sslverify": True,
            "serviceAccountName": "sa",
            "sink": SINK,
            "ceOverrides": {"extensions": {"team": "a"}},
        },
    },
    "PingSource": {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": "p"},
        "spec": {
            "schedule": "*/5 * * * *",
            "timezone": "Europe/Berlin",
            "contentType": "application/json",
            "data": '{"a": 1}',
            "sink": SINK,
            "ceOverrides": {"extensions": {"team": "a"}},
            "missedRuns": "catchUp",
            "maxCatchUpRuns": 5,
            "catchUpWindow": "PT6H",
        },
    },
    "WebhookSource": {
        "apiVersion": "eventing.local/v1alpha1",
        "kind": "WebhookSource",
        "metadata": {"name": "w"},
        "spec": {
            "sink": SINK,
            "path": "/hooks/shop/orders",
            "maxBodyBytes": 2048,
            "auth": {"hmac": {"secretKeyRef": SECRET["secretKeyRef"], "header": "X-Signature"}},
            "event": {
                "type": "com.example.t",
                "source": "https://example.com",
                "subject": "s",
                "subjectHeader": "X-Subject",
                "idHeaders": ["X-Id"],
            },
            "extensionHeaders": ["X-Tenant"],
            "formBodies": "raw",
            "acceptCloudEvents": False,
            "ceOverrides": {"extensions": {"team": "a"}},
        },
    },
}


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def registry() -> KindRegistry:
    kinds = KindRegistry()
    # Workload: the github example builds with a job workload.
    for model in (Broker, Trigger, Workload, github.MODEL, gitlab.MODEL, ping.MODEL, webhook.MODEL):
        kinds.register(model)
    return kinds


def load(tmp_path: Path, *docs: dict[str, Any]) -> list[Any]:
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all([BROKER, *docs]))
    return load_resources(tmp_path, registry()).resources[1:]


@pytest.mark.parametrize("example", ["github", "gitlab", "webhook", "ping"])
def test_examples_load(example: str) -> None:
    loaded = load_resources(EXAMPLES / example, registry())
    kinds = loaded.kinds()
    assert kinds["Broker"] == 1
    assert kinds["Trigger"] >= 1
    assert set(kinds) - {"Broker", "Trigger", "Workload"}


@pytest.mark.parametrize("kind", sorted(FULL))
def test_every_documented_field_parses(tmp_path: Path, kind: str) -> None:
    [resource] = load(tmp_path, FULL[kind])
    assert resource.kind == kind
    assert resource.spec.ce_overrides.extensions == {"team": "a"}


def test_parsed_values(tmp_path: Path) -> None:
    gh, gl, p, w = load(tmp_path, *(FULL[k] for k in sorted(FULL)))
    assert gh.spec.github_api_url == "https://api.github.com/"
    assert gh.spec.event_types == ["push", "pull_request"]
    assert gl.spec.sslverify is True
    assert p.spec.catch_up_window == 6 * 3600
    assert p.spec.missed_runs == "catchUp"
    assert w.spec.auth.hmac.header == "X-Signature"
    assert w.spec.event.id_headers == ["X-Id"]


def test_defaults(tmp_path: Path) -> None:
    minimal = {
        "apiVersion": "sources.knative.dev/v1beta2",
        "kind": "PingSource",
        "metadata": {"name": "p"},
        "spec": {"sink": SINK},
    }
    hook = {
        "apiVersion": "eventing.local/v1alpha1",
        "kind": "WebhookSource",
        "metadata": {"name": "w"},
        "spec": {"sink": SINK},
    }
    p, w = load(tmp_path, minimal, hook)
    assert p.spec.schedule == "* * * * *"
    assert (p.spec.missed_runs, p.spec.max_catch_up_runs, p.spec.catch_up_window) == (
        "skip",
        10,
        86400.0,
    )
    assert w.spec.max_body_bytes == 1024 * 1024
    assert w.spec.event.type == "local.eventing.webhook"
    assert w.spec.event.id_headers == ["Idempotency-Key", "X-Request-Id"]
    assert (w.spec.form_bodies, w.spec.accept_cloud_events, w.spec.auth) == ("json", True, None)


def with_spec(kind: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(FULL[kind]))
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


BAD: list[tuple[dict[str, Any], str, str]] = [
    (with_spec("GitHubSource", eventTypes=["workflow_run"]), "spec.eventTypes", "not a GitHub"),
    (with_spec("GitHubSource", eventTypes=[]), "spec.eventTypes", "at least one"),
    (with_spec("GitHubSource", ownerAndRepository="a/b/c"), "spec.ownerAndRepository", "owner"),
    (with_spec("GitHubSource", secretToken=None), "spec.secretToken", "required"),
    (
        with_spec("GitHubSource", secretToken={"secretKeyRef": {"name": "../x", "key": "k"}}),
        "spec.secretToken.secretKeyRef.name",
        "Secret name",
    ),
    (with_spec("GitHubSource", sink={"uri": "ftp://example.com"}), "spec.sink", "ftp://"),
    (
        with_spec(
            "GitHubSource",
            sink={"ref": {"apiVersion": "messaging.knative.dev/v1", "kind": "Broker", "name": "x"}},
        ),
        "spec.sink",
        "Broker",
    ),
    (with_spec("GitHubSource", unknownField=1), "spec.unknownField", "unknown field"),
    (
        {
            **FULL["GitHubSource"],
            "metadata": {"name": "gh", "annotations": {"eventing.local/max-body-bytes": "lots"}},
        },
        "",
        "max-body-bytes",
    ),
    (with_spec("GitLabSource", projectUrl="gitlab.com/x"), "spec.projectUrl", "http"),
    (with_spec("GitLabSource", eventTypes=["Push Hook"]), "spec.eventTypes", "hook setting"),
    (with_spec("PingSource", schedule="@every 5m"), "spec.schedule", "@every"),
    (with_spec("PingSource", schedule="0 * * * * *"), "spec.schedule", "five fields"),
    (with_spec("PingSource", timezone="Mars/Olympus"), "spec.timezone", "IANA"),
    (with_spec("PingSource", dataBase64="e30="), "spec", "at most one"),
    (with_spec("PingSource", data=None, dataBase64="***"), "spec", "base64"),
    (with_spec("PingSource", data="[1, 2]"), "spec", "JSON object"),
    (with_spec("PingSource", missedRuns="sometimes"), "spec.missedRuns", "one of"),
    (with_spec("PingSource", maxCatchUpRuns=0), "spec.maxCatchUpRuns", "greater"),
    (with_spec("PingSource", catchUpWindow="P1M"), "spec.catchUpWindow", "ISO-8601"),
    (with_spec("WebhookSource", auth={}), "spec.auth", "exactly one"),
    (with_spec("WebhookSource", path="/shop/orders"), "spec.path", "two segments"),
    (with_spec("WebhookSource", path="/a/../b/c"), "spec.path", "absolute URL path"),
    (with_spec("WebhookSource", maxBodyBytes=0), "spec.maxBodyBytes", "greater"),
    (
        with_spec("WebhookSource", extensionHeaders=["X-Id", "Xid"]),
        "spec.extensionHeaders",
        "both become",
    ),
    (with_spec("WebhookSource", extensionHeaders=["Type"]), "spec.extensionHeaders", "not allowed"),
    (with_spec("WebhookSource", formBodies="xml"), "spec.formBodies", "one of"),
    (with_spec("WebhookSource", event={"type": "bad\ntype"}), "spec.event.type", "control"),
    (
        with_spec("WebhookSource", ceOverrides={"extensions": {"Bad_Name": "x"}}),
        "spec.ceOverrides.extensions",
        "invalid",
    ),
]


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    BAD,
    ids=[f"{d['kind']}-{p or 'metadata'}-{i}" for i, (d, p, _) in enumerate(BAD)],
)
def test_bad_values_are_reported_at_their_field(
    tmp_path: Path, doc: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(LoadError) as info:
        load(tmp_path, doc)
    [error] = info.value.errors
    assert error.path == path, str(error)
    assert message in error.message, str(error)
