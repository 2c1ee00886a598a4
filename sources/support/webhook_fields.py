"""Helpers the webhook source kinds share: paths, body limits, header-to-attribute
cleaning.

Why one place: every value copied from a request into an attribute must be cleaned and
bounded the same way, so no request can make an invalid event or an unbounded header
on delivery. (``sink`` and ``ceOverrides`` come from :mod:`sources.support.source_spec`, shared
with the broker-consuming sources.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from eventing.resources.base import Destination, Metadata

#: Context attributes an extension (override or header) must not replace.
CONTEXT_ATTRIBUTES: Final = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
    }
)
#: Annotation that sets the request body limit on the Knative webhook kinds, which have
#: no field for it (ours, not Knative's).
MAX_BODY_ANNOTATION: Final = "eventing.local/max-body-bytes"
MAX_BODY_LIMIT: Final = 64 * 1024 * 1024
#: Bound on any string copied from a request into an attribute.
MAX_ATTRIBUTE_CHARS: Final = 1024

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff\ud800-\udfff]")
_NOT_NAME = re.compile(r"[^a-z0-9]")


def broker_key(sink: Destination, namespace: str) -> str:
    """``namespace/name`` of the sink's broker (the ref's namespace defaults to the
    source's, as in Knative); ``sink`` is a validated ``BrokerSink``."""
    assert sink.ref is not None
    return f"{sink.ref.namespace or namespace}/{sink.ref.name}"


def default_webhook_path(namespace: str, name: str) -> str:
    """Where the ingress server routes a webhook source unless it sets its own path."""
    return f"/webhooks/{namespace}/{name}"


def max_body_from_annotation(metadata: Metadata, default: int) -> int:
    """The body limit from :data:`MAX_BODY_ANNOTATION`, or ``default``."""
    raw = metadata.annotations.get(MAX_BODY_ANNOTATION)
    return default if raw is None else parse_max_body(raw)


def parse_max_body(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BODY_LIMIT:
        raise ValueError(
            f"metadata.annotations[{MAX_BODY_ANNOTATION}] = {raw[:40]!r} must be a whole "
            f"number of bytes from 1 to {MAX_BODY_LIMIT}"
        )
    return int(raw)


def extension_name_for_header(header: str) -> str:
    """``X-Tenant-Id`` -> ``xtenantid``: lower-cased, only a-z0-9, at most 20 chars."""
    return _NOT_NAME.sub("", header.lower())[:20]


def clean_text(value: str, limit: int = MAX_ATTRIBUTE_CHARS) -> str | None:
    """``value`` without characters a CloudEvents String forbids; ``None`` when nothing
    is left or it is longer than ``limit`` (an attribute is never silently cut)."""
    cleaned = _FORBIDDEN.sub("", value)
    if not cleaned or len(cleaned) > limit:
        return None
    return cleaned


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by lower-case name (``WebhookRequest`` lower-cases keys)."""
    return headers.get(name.lower())
