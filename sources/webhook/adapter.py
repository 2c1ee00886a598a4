"""Our generic ``WebhookSource`` (``eventing.local/v1alpha1``): any HTTP POST -> CloudEvent.

Knative has no such source (producers must already speak CloudEvents); Argo's webhook
event source wraps bodies but mints random ids. This one wraps non-CloudEvent JSON,
form and other bodies, keeps chosen headers as extensions, and takes the event id
from an idempotency header when the sender has one, so a retried POST deduplicates.
Without such a header the id is a fresh UUID and retries cannot be told apart.

Bodies (decisions, docs/sources-webhooks.md has the table):

* JSON (``application/json``, ``*/*+json``): checked to parse, stored as received,
  ``datacontenttype`` = the request's ``Content-Type``;
* ``application/x-www-form-urlencoded``: with ``formBodies: json`` (default) turned into
  a JSON object, a field sent once is a string and a repeated field a list of strings;
  with ``formBodies: raw`` stored as received;
* ``multipart/*`` is refused (415); any other type is stored as opaque bytes;
* a request that already is a CloudEvent (a ``ce-specversion`` header, or
  ``application/cloudevents+json``) is stored as that event when
  ``acceptCloudEvents: true`` (default): its id, source and type are the sender's.
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
from eventing.resources.base import OUR_API, Model, Resource
from sources.support.base import WebhookRequest, WebhookResponse
from sources.support.secrets import Secret, SecretKeyRef, resolve_secret
from sources.support.signatures import (
    verify_bearer,
    verify_sha256_signature,
    well_formed_sha256_signature,
)
from sources.support.source_spec import BrokerSink, CloudEventOverrides, apply_overrides
from sources.support.webhook_adapter import WebhookAdapterBase
from sources.support.webhook_fields import (
    CONTEXT_ATTRIBUTES,
    MAX_BODY_LIMIT,
    clean_text,
    default_webhook_path,
    extension_name_for_header,
)
from sources.support.webhook_http import Rejected, refuse
from sources.webhook.bodies import as_cloudevent, body_data

DEFAULT_TYPE: Final = "local.eventing.webhook"
DEFAULT_MAX_BODY: Final = 1024 * 1024  # the ingress default, and Argo's webhook default
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}\Z")
_PATH = re.compile(r"/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*\Z")


def _header_name(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError("must be an HTTP header name (letters, digits, '-', ...)")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]


def _attribute_text(value: str) -> str:
    if clean_text(value, 256) != value:
        raise ValueError("must be 1 to 256 characters without control characters")
    return value


def _path(value: str) -> str:
    segments = value.strip("/").split("/")
    if len(value) > 200 or not _PATH.match(value) or ".." in segments or "." in segments:
        raise ValueError("must be an absolute URL path such as /hooks/shop/orders (no '..')")
    if len(segments) == 2:
        raise ValueError(
            "a path of exactly two segments would clash with broker ingress "
            "/<namespace>/<broker>; use one or three or more, e.g. /webhooks/ns/name"
        )
    return value


class HmacAuth(Model):
    """``<header>: sha256=<hex HMAC-SHA256(secret, body)>``, GitHub's scheme."""

    secret_key_ref: SecretKeyRef = Field(alias="secretKeyRef")
    header: HeaderName = "X-Hub-Signature-256"


class BearerAuth(Model):
    """``Authorization: Bearer <token>``."""

    secret_key_ref: SecretKeyRef = Field(alias="secretKeyRef")


class WebhookAuth(Model):
    hmac: HmacAuth | None = None
    bearer: BearerAuth | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WebhookAuth:
        if (self.hmac is None) == (self.bearer is None):
            raise ValueError("set exactly one of 'hmac' or 'bearer'")
        return self


class EventTemplate(Model):
    type: Annotated[str, AfterValidator(_attribute_text)] = DEFAULT_TYPE
    source: Annotated[str, AfterValidator(_attribute_text)] | None = None
    subject: Annotated[str, AfterValidator(_attribute_text)] | None = None
    subject_header: HeaderName | None = None
    id_headers: list[HeaderName] = Field(
        default_factory=lambda: ["Idempotency-Key", "X-Request-Id"], max_length=10
    )


def _extension_headers(value: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in value:
        name = extension_name_for_header(item)
        if not name or name in CONTEXT_ATTRIBUTES:
            raise ValueError(f"header {item!r} gives extension name {name!r}, which is not allowed")
        if name in seen:
            raise ValueError(f"headers {seen[name]!r} and {item!r} both become extension {name!r}")
        seen[name] = item
    return value


class WebhookSourceSpec(Model):
    sink: BrokerSink
    path: Annotated[str, AfterValidator(_path)] | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY, ge=1, le=MAX_BODY_LIMIT)
    auth: WebhookAuth | None = None
    event: EventTemplate = Field(default_factory=EventTemplate)
    extension_headers: Annotated[list[HeaderName], AfterValidator(_extension_headers)] = Field(
        default_factory=list, max_length=32
    )
    form_bodies: Literal["json", "raw"] = "json"
    accept_cloud_events: bool = True
    ce_overrides: CloudEventOverrides | None = None


class WebhookSource(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (OUR_API,)
    KIND: ClassVar[str] = "WebhookSource"

    api_version: Literal["eventing.local/v1alpha1"]
    kind: Literal["WebhookSource"]
    spec: WebhookSourceSpec

    @property
    def event_source(self) -> str:
        """``spec.event.source``, else ``/apis/v1alpha1/namespaces/<ns>/webhooksources/<name>``
        (the shape of Knative's PingSource source)."""
        return self.spec.event.source or (
            f"/apis/v1alpha1/namespaces/{self.namespace}/webhooksources/{self.name}"
        )


MODEL = WebhookSource


def map_request(
    source: WebhookSource,
    request: WebhookRequest,
    *,
    now: datetime,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Event:
    """The CloudEvent for an authenticated request (pure but for ``new_id``)."""
    spec = source.spec
    if spec.accept_cloud_events:
        event = as_cloudevent(request)
        if event is not None:
            apply_overrides(event.attributes, spec.ce_overrides)
            return event
    data, content_type = body_data(request, spec.form_bodies)
    headers = request.headers
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": _first_header(headers, spec.event.id_headers, 128) or new_id(),
        "source": source.event_source,
        "type": spec.event.type,
        "time": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    subject = spec.event.subject
    if spec.event.subject_header is not None:
        subject = _first_header(headers, [spec.event.subject_header], 256) or subject
    if subject is not None:
        attributes["subject"] = subject
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    for name in spec.extension_headers:
        value = headers.get(name.lower())
        cleaned = clean_text(value) if value is not None else None
        if cleaned is not None:
            attributes[extension_name_for_header(name)] = cleaned
    apply_overrides(attributes, spec.ce_overrides)
    return Event(attributes, data)


def _first_header(headers: Mapping[str, str], names: list[str], limit: int) -> str | None:
    for name in names:
        value = headers.get(name.lower())
        cleaned = clean_text(value.strip(), limit) if value is not None else None
        if cleaned:
            return cleaned
    return None


class WebhookAdapter(WebhookAdapterBase[WebhookSource]):
    """The webhook the ingress server routes to (``sources.support.base.WebhookSource``)."""

    def __init__(
        self,
        resource: WebhookSource,
        secret: Secret | None = None,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(
            resource,
            path=resource.spec.path or default_webhook_path(resource.namespace, resource.name),
            sink=resource.spec.sink,
            max_body_bytes=resource.spec.max_body_bytes,
            now=now,
        )
        self._secret = secret

    def _authenticate(self, request: WebhookRequest) -> None:
        auth = self.resource.spec.auth
        if auth is None or self._secret is None:
            return
        if auth.hmac is not None:
            value = request.headers.get(auth.hmac.header.lower())
            if not verify_sha256_signature(self._secret.reveal(), request.body, value):
                raise Rejected(401, f"missing or invalid {auth.hmac.header}")
        elif not verify_bearer(self._secret.reveal(), request.headers.get("authorization")):
            raise Rejected(
                401,
                "missing or invalid bearer token",
                {"WWW-Authenticate": f'Bearer realm="{self.name}"'},
            )

    async def authenticate(self, request: WebhookRequest) -> WebhookResponse | bool:
        """A bearer token is checked before the body is read; an HMAC needs the body,
        so only its header's form is checked here."""
        auth = self.resource.spec.auth
        if auth is None or self._secret is None:
            return False
        try:
            if auth.hmac is not None:
                value = request.headers.get(auth.hmac.header.lower())
                if not well_formed_sha256_signature(value):
                    raise Rejected(401, f"missing or invalid {auth.hmac.header}")
                return False
            self._authenticate(request)
        except Rejected as rejected:
            return refuse(self.health, rejected)
        return True

    def make_event(self, request: WebhookRequest) -> Event:
        self._authenticate(request)
        return map_request(self.resource, request, now=self._now())


def build(
    resource: Resource,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | str | None = None,
    now: Callable[[], datetime] | None = None,
    **_: object,
) -> WebhookAdapter:
    """Construct the adapter; resolve the auth secret now so a missing one fails at
    load time (deps: ``environ``, ``secrets_dir``, ``now``; others ignored)."""
    if not isinstance(resource, WebhookSource):
        raise TypeError(f"expected a WebhookSource, got {type(resource).__name__}")
    auth = resource.spec.auth
    secret = None
    if auth is not None:
        method = auth.hmac or auth.bearer
        assert method is not None
        secret = resolve_secret(
            method.secret_key_ref,
            environ=environ,
            secrets_dir=secrets_dir,
            what=f"WebhookSource {resource.key} spec.auth.{'hmac' if auth.hmac else 'bearer'}",
        )
    return WebhookAdapter(resource, secret, now=now)
