"""Knative ``GitLabSource`` (``sources.knative.dev/v1alpha1``) as a webhook on our ingress.

The CloudEvent is Knative's: type ``dev.knative.sources.gitlab.<kind>`` where ``<kind>``
is ``X-Gitlab-Event`` without its `` Hook`` suffix, lower-cased, spaces as ``_``
(``Merge Request Hook`` -> ``merge_request``); source = ``spec.projectUrl``; extension
``comgitlabevent`` = the raw header; data = the body exactly as received,
``datacontenttype: application/json``.

Where we differ from Knative's adapter, and why:

* the id is ``X-Gitlab-Event-UUID``, else ``Idempotency-Key`` (GitLab 17.4+, stable
  across retries), else a fresh UUID. Knative always mints a random one, so a GitLab
  retry can never be deduplicated (eventing-gitlab#193);
* a wrong or missing ``X-Gitlab-Token`` is answered **401** (Knative: 400), compared in
  constant time; a header that does not end in `` Hook`` is 400, as in Knative;
* an event whose hook setting is not in ``spec.eventTypes`` is answered **200** and
  counted in ``drops`` rather than refused: GitLab may disable a hook that keeps
  failing. An empty ``eventTypes`` accepts every event;
* ``accessToken``, ``sslverify`` and ``serviceAccountName`` load but are unused: we do
  not register the hook through GitLab's API.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from eventing.events import AttributeValue, Event
from eventing.resources.base import KNATIVE_SOURCES_V1ALPHA1, Model, Resource
from sources.support.base import WebhookRequest, WebhookResponse
from sources.support.secrets import Secret, SecretValueFromSource, resolve_secret
from sources.support.signatures import verify_token
from sources.support.source_spec import BrokerSink, CloudEventOverrides, apply_overrides
from sources.support.webhook_adapter import WebhookAdapterBase
from sources.support.webhook_fields import (
    default_webhook_path,
    max_body_from_annotation,
)
from sources.support.webhook_http import (
    Ignored,
    Rejected,
    parse_json_object,
    refuse,
)

TYPE_PREFIX: Final = "dev.knative.sources.gitlab."
#: Same reasoning as GitHub: never refuse a real delivery for its size by default.
DEFAULT_MAX_BODY: Final = 25 * 1024 * 1024
_HEADER = re.compile(r"([A-Za-z][A-Za-z ]{0,62}) Hook\Z")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
_HOOK_SETTING = re.compile(r"[a-z][a-z_]{0,62}_events\Z")
#: Event kinds whose project-hook setting is not simply ``<kind>_events``.
_SETTING_FOR_KIND: Final = {
    "issue": "issues_events",
    "confidential_issue": "confidential_issues_events",
    "merge_request": "merge_requests_events",
    "job": "job_events",
    "build": "job_events",
    "release": "releases_events",
}
#: The hook settings Knative's GitLabSource knows (GitLab has more; they are accepted).
KNATIVE_EVENT_TYPES: Final = (
    "confidential_issues_events",
    "confidential_note_events",
    "deployment_events",
    "issues_events",
    "job_events",
    "merge_requests_events",
    "note_events",
    "pipeline_events",
    "push_events",
    "tag_push_events",
    "wiki_page_events",
)


def _event_types(value: list[str]) -> list[str]:
    for item in value:
        if not _HOOK_SETTING.match(item):
            raise ValueError(
                f"{item[:60]!r} is not a GitLab project hook setting such as "
                f"{', '.join(KNATIVE_EVENT_TYPES[:4])}, ... (lowercase, ending in '_events')"
            )
    return value


def _project_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) > 2048:
        raise ValueError("must be the project's http(s) URL, e.g. https://gitlab.com/group/app")
    return value


class GitLabSourceSpec(Model):
    project_url: Annotated[str, AfterValidator(_project_url)]
    event_types: Annotated[list[str], AfterValidator(_event_types)] = Field(default_factory=list)
    secret_token: SecretValueFromSource
    access_token: SecretValueFromSource | None = None
    sslverify: bool | None = None
    service_account_name: str | None = None
    sink: BrokerSink
    ce_overrides: CloudEventOverrides | None = None


class GitLabSource(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (KNATIVE_SOURCES_V1ALPHA1,)
    KIND: ClassVar[str] = "GitLabSource"

    api_version: Literal["sources.knative.dev/v1alpha1"]
    kind: Literal["GitLabSource"]
    spec: GitLabSourceSpec

    @model_validator(mode="after")
    def _annotations(self) -> GitLabSource:
        max_body_from_annotation(self.metadata, DEFAULT_MAX_BODY)
        return self


MODEL = GitLabSource


def event_kind(header_value: str | None) -> str:
    """``Merge Request Hook`` -> ``merge_request``; :class:`Rejected` 400 otherwise."""
    if not header_value:
        raise Rejected(400, "missing X-Gitlab-Event header")
    match = _HEADER.match(header_value)
    if match is None:
        raise Rejected(400, "X-Gitlab-Event must be '<Kind> Hook', e.g. 'Push Hook'")
    return "_".join(match.group(1).lower().split())


def hook_setting(kind: str) -> str:
    """The project-hook setting (``eventTypes`` value) that makes GitLab send ``kind``."""
    return _SETTING_FOR_KIND.get(kind, f"{kind}_events")


def event_id(headers: Mapping[str, str], new_id: Callable[[], str]) -> str:
    for name in ("x-gitlab-event-uuid", "idempotency-key"):
        value = headers.get(name)
        if value and _ID.match(value):
            return value
    return new_id()


def map_hook(
    source: GitLabSource,
    request: WebhookRequest,
    *,
    now: datetime,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Event:
    """The CloudEvent for an authenticated GitLab hook (pure but for ``new_id``).

    Raises :class:`Rejected` (400) and :class:`Ignored` (not in ``eventTypes``)."""
    raw = request.headers.get("x-gitlab-event")
    kind = event_kind(raw)
    assert raw is not None
    types = source.spec.event_types
    if types and hook_setting(kind) not in types:
        raise Ignored(
            "event_type_not_subscribed", f"{raw!r} needs {hook_setting(kind)!r} in spec.eventTypes"
        )
    parse_json_object(request.body)
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": event_id(request.headers, new_id),
        "source": source.spec.project_url,
        "type": TYPE_PREFIX + kind,
        "time": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "comgitlabevent": raw,
    }
    apply_overrides(attributes, source.spec.ce_overrides)
    return Event(attributes, request.body)


class GitLabAdapter(WebhookAdapterBase[GitLabSource]):
    """The webhook the ingress server routes to (``sources.support.base.WebhookSource``)."""

    def __init__(
        self, resource: GitLabSource, secret: Secret, *, now: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(
            resource,
            path=default_webhook_path(resource.namespace, resource.name),
            sink=resource.spec.sink,
            max_body_bytes=max_body_from_annotation(resource.metadata, DEFAULT_MAX_BODY),
            now=now,
        )
        self._secret = secret

    async def authenticate(self, request: WebhookRequest) -> WebhookResponse | bool:
        """The token is in a header: check it before the body is read."""
        if verify_token(self._secret.reveal(), request.headers.get("x-gitlab-token")):
            return True
        return refuse(self.health, Rejected(401, "missing or invalid X-Gitlab-Token"))

    def make_event(self, request: WebhookRequest) -> Event:
        if not verify_token(self._secret.reveal(), request.headers.get("x-gitlab-token")):
            raise Rejected(401, "missing or invalid X-Gitlab-Token")
        return map_hook(self.resource, request, now=self._now())


def build(
    resource: Resource,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | str | None = None,
    now: Callable[[], datetime] | None = None,
    **_: object,
) -> GitLabAdapter:
    """Construct the adapter; resolve ``spec.secretToken`` now so a missing secret
    fails at load time (deps: ``environ``, ``secrets_dir``, ``now``; others ignored)."""
    if not isinstance(resource, GitLabSource):
        raise TypeError(f"expected a GitLabSource, got {type(resource).__name__}")
    secret = resolve_secret(
        resource.spec.secret_token.secret_key_ref,
        environ=environ,
        secrets_dir=secrets_dir,
        what=f"GitLabSource {resource.key} spec.secretToken",
    )
    return GitLabAdapter(resource, secret, now=now)
