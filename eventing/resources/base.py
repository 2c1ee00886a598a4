"""Shared pieces of every resource model: metadata, references, destinations, and the
strict base class.

Why pydantic only here: it validates user YAML at the boundary (unknown fields are
errors, every error has a path); inside, the runtime works on the validated models and
never re-checks on the hot path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from eventing.resources.dedup import dedup_settings

KNATIVE_EVENTING: Final = "eventing.knative.dev/v1"
KNATIVE_SOURCES_V1: Final = "sources.knative.dev/v1"
KNATIVE_SOURCES_V1BETA1: Final = "sources.knative.dev/v1beta1"
KNATIVE_SOURCES_V1ALPHA1: Final = "sources.knative.dev/v1alpha1"
OUR_GROUP: Final = "eventing.local"
OUR_API: Final = f"{OUR_GROUP}/v1alpha1"
BROKER_CLASS_ANNOTATION: Final = "eventing.knative.dev/broker.class"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def _dns_name(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


Name = Annotated[str, AfterValidator(_dns_name)]


class Model(BaseModel):
    """Strict base: unknown fields are errors; YAML uses camelCase names."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=False,
    )


def _known_annotations(value: dict[str, str]) -> dict[str, str]:
    """Our annotations that every kind may carry are checked when loaded, so a typo in
    a value is a validation error with its path, not a surprise at run time."""
    dedup_settings(value)
    return value


class Metadata(Model):
    name: Name
    namespace: Name = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: Annotated[dict[str, str], AfterValidator(_known_annotations)] = Field(
        default_factory=dict
    )
    # Fields Kubernetes fills in; accepted so `kubectl get -o yaml` output loads.
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None


class KReference(Model):
    """A reference to another resource (Knative duck type ``KReference``)."""

    api_version: str | None = None
    kind: str
    name: Name
    namespace: Name | None = None


class Destination(Model):
    """Where to send events: a resolved ``ref``, a ``uri``, or both (ref + relative uri).

    Besides ``http(s)://`` URLs, ``uri`` may be ``dlq:`` (the built-in dead-letter
    store, queryable with ``eventing dlq``) or ``log:`` (prints events).
    """

    ref: KReference | None = None
    uri: str | None = None
    ca_certs: str | None = Field(default=None, alias="CACerts")
    audience: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Destination:
        self._check_target()
        return self

    def _check_target(self) -> None:
        """What a destination needs; a subclass with more ways to say it overrides."""
        if self.ref is None and not self.uri:
            raise ValueError("needs 'ref' or 'uri'")
        if self.uri is not None and self.ref is None:
            _check_uri(self.uri)


_SPECIAL_URIS: Final = ("dlq:", "log:")
_MAX_URI: Final = 2048


def _check_uri(uri: str) -> None:
    """``dlq:`` and ``log:`` exactly, or an absolute ``http(s)://`` URL with a host:
    anything else (``log:/etc/passwd``, ``dlq:../x``, ``ftp://``) is refused here,
    before it could reach a sink that would read it some other way."""
    if uri in _SPECIAL_URIS:
        return
    shown = repr(uri[:80])
    if len(uri) > _MAX_URI or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in uri):
        raise ValueError(
            f"uri {shown} is not a valid URL (at most {_MAX_URI} characters, no spaces or "
            "control characters)"
        )
    if uri.startswith(_SPECIAL_URIS):
        raise ValueError(f"uri {shown} is not supported: 'dlq:' and 'log:' take nothing after ':'")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"uri {shown} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"uri {shown} is not supported: use http://host/..., https://host/..., dlq: or log:"
        )


class Resource(Model):
    """A top-level document: apiVersion, kind, metadata, spec."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str] = ""

    api_version: str
    kind: str
    metadata: Metadata
    status: dict[str, Any] | None = None  # ignored: accepted so exported objects load

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> str:
        """``namespace/name``: unique per kind."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def ignored(self) -> list[tuple[str, object, str]]:
        """Fields that are accepted (Knative has them) but have no effect here:
        (field path, value, why). ``validate`` and ``run`` print them as warnings."""
        return []
