"""What Knative's GitHubSource puts in a CloudEvent for each GitHub event kind.

Facts from knative-extensions/eventing-github ``pkg/common/events.go`` (``ValidEvents``
and ``SubjectAndExtensionsFromGitHubEvent``), written here as a table so each row can
be checked against upstream at a glance:

* ``subject``: a payload value (issue or PR number, tag name, hook id...), or the last
  path part of a URL (push ``compare``, comment ``html_url``), or gollum's page names
  joined by ``,``;
* extensions: ``owner`` (``repository.owner.login``), ``repository``
  (``repository.name``), ``sender`` (``sender.login``), ``action`` and per-kind extras.

Deliberate differences, all documented in docs/sources-webhooks.md:

* an extension whose payload value is missing or null is left out; Knative's Go
  structs emit zero values instead (``installation: 0``, ``label: ""``);
* ``owner`` falls back to ``organization.login`` when the payload has no repository
  (organization hooks, e.g. ``ping`` on an org); Knative sends an empty owner;
* integers outside the CloudEvents Integer range (32 bit) are sent as strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from eventing.events import INT32_MAX, INT32_MIN, AttributeValue
from sources.support.webhook_fields import clean_text

Path = tuple[str, ...]
SubjectKind = Literal["value", "last_path", "pages"]

#: Knative's ``ValidEvents``: any other ``X-GitHub-Event`` is answered 404.
VALID_EVENTS: Final = frozenset(
    {
        "check_run",
        "check_suite",
        "commit_comment",
        "create",
        "delete",
        "deployment",
        "deployment_status",
        "fork",
        "gollum",
        "installation",
        "installation_repositories",
        "integration_installation",
        "integration_installation_repositories",
        "issue_comment",
        "issues",
        "label",
        "member",
        "membership",
        "milestone",
        "organization",
        "org_block",
        "page_build",
        "ping",
        "project_card",
        "project_column",
        "project",
        "public",
        "pull_request",
        "pull_request_review_comment",
        "pull_request_review",
        "push",
        "release",
        "repository",
        "repository_vulnerability_alert",
        "security_advisory",
        "status",
        "team_add",
        "team",
        "watch",
    }
)

OWNER: Final = ("owner", ("repository", "owner", "login"))
REPOSITORY: Final = ("repository", ("repository", "name"))
SENDER: Final = ("sender", ("sender", "login"))
ACTION: Final = ("action", ("action",))
INSTALLATION: Final = ("installation", ("installation", "id"))
ORG_OWNER: Final = ("owner", ("organization", "login"))
REPO_SENDER: Final = (OWNER, REPOSITORY, SENDER)
REPO_SENDER_ACTION: Final = (*REPO_SENDER, ACTION)

#: event -> (subject path, how to read it, extensions as (name, payload path)).
RULES: Final[dict[str, tuple[Path, SubjectKind, tuple[tuple[str, Path], ...]]]] = {
    "check_run": (("check_run", "id"), "value", REPO_SENDER_ACTION),
    "check_suite": (("check_suite", "id"), "value", REPO_SENDER_ACTION),
    "commit_comment": (("comment", "html_url"), "last_path", REPO_SENDER_ACTION),
    "create": (("ref_type",), "value", (*REPO_SENDER, ("ref", ("ref",)))),
    "delete": (("ref_type",), "value", (*REPO_SENDER, ("ref", ("ref",)))),
    "deployment": (("deployment", "id"), "value", REPO_SENDER),
    "deployment_status": (("deployment", "id"), "value", REPO_SENDER),
    "fork": (("forkee", "id"), "value", REPO_SENDER),
    "gollum": (("pages",), "pages", REPO_SENDER),
    "installation": (("installation", "id"), "value", (INSTALLATION, SENDER, ACTION)),
    "integration_installation": (("installation", "id"), "value", (INSTALLATION, SENDER, ACTION)),
    "installation_repositories": (("installation", "id"), "value", (INSTALLATION, SENDER, ACTION)),
    "integration_installation_repositories": (
        ("installation", "id"),
        "value",
        (INSTALLATION, SENDER, ACTION),
    ),
    "issue_comment": (("comment", "html_url"), "last_path", REPO_SENDER_ACTION),
    "issues": (
        ("issue", "number"),
        "value",
        (*REPO_SENDER_ACTION, ("label", ("label", "name")), ("assignee", ("assignee", "login"))),
    ),
    "label": (("label", "name"), "value", (*REPO_SENDER_ACTION, ("label", ("label", "name")))),
    "member": (("member", "id"), "value", REPO_SENDER_ACTION),
    "membership": (("member", "id"), "value", (ORG_OWNER, ("scope", ("scope",)), SENDER, ACTION)),
    "milestone": (("milestone", "number"), "value", REPO_SENDER_ACTION),
    "organization": (("action",), "value", (ORG_OWNER, SENDER, ACTION)),
    "org_block": (("action",), "value", (ORG_OWNER, SENDER, ACTION)),
    "page_build": (("id",), "value", REPO_SENDER),
    "ping": (("hook_id",), "value", REPO_SENDER),
    "project_card": (("action",), "value", REPO_SENDER_ACTION),
    "project_column": (("action",), "value", REPO_SENDER_ACTION),
    "project": (("action",), "value", REPO_SENDER_ACTION),
    "public": (("repository", "id"), "value", REPO_SENDER),
    "pull_request": (
        ("pull_request", "number"),
        "value",
        (
            *REPO_SENDER,
            INSTALLATION,
            ACTION,
            ("number", ("number",)),
            ("label", ("label", "name")),
            ("assignee", ("assignee", "login")),
        ),
    ),
    "pull_request_review_comment": (
        ("comment", "id"),
        "value",
        (*REPO_SENDER, INSTALLATION, ACTION),
    ),
    "pull_request_review": (
        ("review", "id"),
        "value",
        (*REPO_SENDER, INSTALLATION, ACTION, ("review", ("review", "state"))),
    ),
    "push": (
        ("compare",),
        "last_path",
        (
            *REPO_SENDER,
            INSTALLATION,
            ("pusher", ("pusher", "name")),
            ("ref", ("ref",)),
            ("created", ("created",)),
            ("deleted", ("deleted",)),
            ("forced", ("forced",)),
        ),
    ),
    "release": (
        ("release", "tag_name"),
        "value",
        (*REPO_SENDER, INSTALLATION, ACTION, ("release", ("release", "name"))),
    ),
    "repository": (("repository", "id"), "value", REPO_SENDER_ACTION),
    "repository_vulnerability_alert": (("alert", "id"), "value", (ACTION,)),
    "security_advisory": (("security_advisory", "ghsa_id"), "value", (ACTION,)),
    "status": (
        ("sha",),
        "value",
        (*REPO_SENDER, ("state", ("state",)), ("name", ("name",)), ("context", ("context",))),
    ),
    "team": (("team", "id"), "value", (SENDER, ACTION)),
    "team_add": (("repository", "id"), "value", REPO_SENDER),
    "watch": (("repository", "id"), "value", REPO_SENDER_ACTION),
}


def dig(payload: Mapping[str, object], path: Path) -> object:
    """The value at ``path`` in nested JSON objects, or ``None``."""
    current: object = payload
    for part in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def subject_and_extensions(
    event: str, payload: Mapping[str, object]
) -> tuple[str | None, dict[str, AttributeValue]]:
    """Knative's subject and extensions for a GitHub ``event`` (one of VALID_EVENTS)."""
    subject_path, kind, extension_rules = RULES[event]
    extensions: dict[str, AttributeValue] = {}
    for name, path in extension_rules:
        value = _attribute(dig(payload, path))
        if value is None and name == "owner":
            value = _attribute(dig(payload, ("organization", "login")))
        if value is not None:
            extensions[name] = value
    return _subject(dig(payload, subject_path), kind), extensions


def _subject(raw: object, kind: SubjectKind) -> str | None:
    if kind == "pages":
        names = (
            [p.get("page_name") for p in raw if isinstance(p, Mapping)]
            if isinstance(raw, list)
            else []
        )
        text = ",".join(n for n in names if isinstance(n, str))
    elif isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    else:
        text = str(raw)
        if kind == "last_path":
            text = text.rsplit("/", 1)[1] if "/" in text else ""
    return clean_text(text)


def _attribute(raw: object) -> AttributeValue | None:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return raw if INT32_MIN <= raw <= INT32_MAX else str(raw)
    if isinstance(raw, str):
        return clean_text(raw)
    return None
