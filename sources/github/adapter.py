"""Knative ``GitHubSource`` (``sources.knative.dev/v1alpha1``) as a webhook on our ingress.

The CloudEvent is Knative's: type ``dev.knative.source.github.<X-GitHub-Event>``,
source ``https://github.com/<ownerAndRepository>``, id = ``X-GitHub-Delivery`` (so a
redelivery from GitHub deduplicates on (source, id)), subject and extensions per
:mod:`sources.github.events`, data = the payload bytes exactly as received,
``datacontenttype: application/json``.

Where we differ from Knative's adapter, and why:

* a bad, missing or mismatched ``X-Hub-Signature-256`` is answered **401**, not 400:
  it is an authentication failure, and 401 is what the Knative data-plane table and our
  ingress use for that; senders and dashboards then show the real cause. Only the
  SHA-256 header is checked: GitHub sends it alongside the legacy SHA-1
  ``X-Hub-Signature`` whenever a secret is set, and SHA-1 is not accepted as a fallback;
* an event not in ``spec.eventTypes`` is answered **200** and counted in
  ``drops["event_type_not_subscribed"]`` (Knative never sees one, because it registers
  the hook with only those events; here the user registers the hook, and a 4xx would
  show every such delivery as failed in GitHub). ``ping`` is always accepted and
  stored: GitHub sends it when the hook is created, and it proves the wiring works;
* ``accessToken``, ``githubAPIURL``, ``secure`` and ``serviceAccountName`` are accepted
  so Knative manifests load, but unused: we do not register the hook through the API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, ClassVar, Final, Literal
from urllib.parse import parse_qs

from pydantic import AfterValidator, Field, model_validator

from eventing.events import AttributeValue, Event
from eventing.resources.base import KNATIVE_SOURCES_V1ALPHA1, Model, Resource
from sources.github.events import VALID_EVENTS, subject_and_extensions
from sources.support.base import WebhookRequest, WebhookResponse
from sources.support.secrets import Secret, SecretValueFromSource, resolve_secret
from sources.support.signatures import verify_sha256_signature, well_formed_sha256_signature
from sources.support.source_spec import BrokerSink, CloudEventOverrides, apply_overrides
from sources.support.webhook_adapter import WebhookAdapterBase
from sources.support.webhook_fields import (
    default_webhook_path,
    max_body_from_annotation,
)
from sources.support.webhook_http import (
    Ignored,
    Rejected,
    media_type,
    parse_json_object,
    refuse,
)

TYPE_PREFIX: Final = "dev.knative.source.github."
SOURCE_PREFIX: Final = "https://github.com/"
#: GitHub caps webhook payloads at 25 MB; GitHub does not retry a failed delivery on
#: its own, so refusing a real one would lose it.
DEFAULT_MAX_BODY: Final = 25 * 1024 * 1024
ALL_EVENTS: Final = "*"
_OWNER_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100})?\Z")
_DELIVERY = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")


def _owner_and_repository(value: str) -> str:
    if not _OWNER_REPO.match(value):
        raise ValueError("must be 'owner/repository' or 'owner' (letters, digits, '-', '_', '.')")
    return value


def _event_types(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("needs at least one event type")
    for item in value:
        if item != ALL_EVENTS and item not in VALID_EVENTS:
            raise ValueError(
                f"{item[:60]!r} is not a GitHub event Knative's GitHubSource supports; "
                f"allowed: '*' or one of {', '.join(sorted(VALID_EVENTS))}"
            )
    return value


class GitHubSourceSpec(Model):
    owner_and_repository: Annotated[str, AfterValidator(_owner_and_repository)]
    event_types: Annotated[list[str], AfterValidator(_event_types)]
    secret_token: SecretValueFromSource
    access_token: SecretValueFromSource | None = None
    github_api_url: str | None = Field(default=None, alias="githubAPIURL")
    secure: bool | None = None
    service_account_name: str | None = None
    sink: BrokerSink
    ce_overrides: CloudEventOverrides | None = None


class GitHubSource(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (KNATIVE_SOURCES_V1ALPHA1,)
    KIND: ClassVar[str] = "GitHubSource"

    api_version: Literal["sources.knative.dev/v1alpha1"]
    kind: Literal["GitHubSource"]
    spec: GitHubSourceSpec

    @model_validator(mode="after")
    def _annotations(self) -> GitHubSource:
        max_body_from_annotation(self.metadata, DEFAULT_MAX_BODY)
        return self


MODEL = GitHubSource


def map_delivery(source: GitHubSource, request: WebhookRequest, *, now: datetime) -> Event:
    """The CloudEvent for an authenticated GitHub delivery (pure).

    Raises :class:`Rejected` (400 missing headers or bad body, 404 unknown event) and
    :class:`Ignored` (event type not subscribed)."""
    event = request.headers.get("x-github-event")
    delivery = request.headers.get("x-github-delivery")
    if not event:
        raise Rejected(400, "missing X-GitHub-Event header")
    if not delivery:
        raise Rejected(400, "missing X-GitHub-Delivery header")
    if not _DELIVERY.match(delivery):
        raise Rejected(400, "X-GitHub-Delivery must be at most 128 letters, digits or -_.:")
    if event not in VALID_EVENTS:
        raise Rejected(404, f"GitHub event {event[:64]!r} is not supported")
    types = source.spec.event_types
    if event != "ping" and ALL_EVENTS not in types and event not in types:
        raise Ignored("event_type_not_subscribed", f"event {event!r} is not in spec.eventTypes")
    data = _payload_bytes(request)
    subject, extensions = subject_and_extensions(event, parse_json_object(data, "payload"))
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": delivery,
        "source": SOURCE_PREFIX + source.spec.owner_and_repository,
        "type": TYPE_PREFIX + event,
        "time": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        **extensions,
    }
    if subject is not None:
        attributes["subject"] = subject
    apply_overrides(attributes, source.spec.ce_overrides)
    return Event(attributes, data)


def _payload_bytes(request: WebhookRequest) -> bytes:
    """JSON bodies as-is; ``application/x-www-form-urlencoded`` hooks carry the JSON in
    the ``payload`` field, which becomes the data (the signature covers the raw form)."""
    kind = media_type(request)
    if kind != "application/x-www-form-urlencoded":
        return request.body
    try:
        fields = parse_qs(request.body.decode("utf-8"), strict_parsing=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "form body is not valid application/x-www-form-urlencoded") from None
    values = fields.get("payload", [])
    if len(values) != 1:
        raise Rejected(400, "form body must carry exactly one 'payload' field")
    return values[0].encode("utf-8")


class GitHubAdapter(WebhookAdapterBase[GitHubSource]):
    """The webhook the ingress server routes to (``sources.support.base.WebhookSource``)."""

    def __init__(
        self,
        resource: GitHubSource,
        secret: Secret,
        *,
        now: Callable[[], datetime] | None = None,
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
        """Only the body can prove the sender; a request without a well-formed
        signature is refused before it is read."""
        if well_formed_sha256_signature(request.headers.get("x-hub-signature-256")):
            return False
        return refuse(self.health, Rejected(401, "missing or invalid X-Hub-Signature-256"))

    def make_event(self, request: WebhookRequest) -> Event:
        signature = request.headers.get("x-hub-signature-256")
        if not verify_sha256_signature(self._secret.reveal(), request.body, signature):
            raise Rejected(401, "missing or invalid X-Hub-Signature-256")
        return map_delivery(self.resource, request, now=self._now())


def build(
    resource: Resource,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | str | None = None,
    now: Callable[[], datetime] | None = None,
    **_: object,
) -> GitHubAdapter:
    """Construct the adapter; resolve ``spec.secretToken`` now so a missing secret
    fails at load time (deps: ``environ``, ``secrets_dir``, ``now``; others ignored)."""
    if not isinstance(resource, GitHubSource):
        raise TypeError(f"expected a GitHubSource, got {type(resource).__name__}")
    secret = resolve_secret(
        resource.spec.secret_token.secret_key_ref,
        environ=environ,
        secrets_dir=secrets_dir,
        what=f"GitHubSource {resource.key} spec.secretToken",
    )
    return GitHubAdapter(resource, secret, now=now)
