"""The CloudEvents HTTP binding: mode detection, binary decode, and both encodings.

Mode detection is a case-insensitive prefix match on ``Content-Type``:
``application/cloudevents-batch`` (checked first), then ``application/cloudevents``
(structured), anything else binary. In binary mode ``Content-Type`` is
``datacontenttype`` and every other attribute is a ``ce-`` header; the body is the
data, taken as bytes and never looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Final

from eventing.codec import headers as hv
from eventing.codec.jsonformat import to_json_bytes
from eventing.errors import InvalidEventError
from eventing.events import AttributeValue, Event, canonical, validate

STRUCTURED_JSON: Final = "application/cloudevents+json"
_CE_PREFIX: Final = "ce-"


class Mode(Enum):
    BINARY = "binary"
    STRUCTURED = "structured"
    BATCH = "batch"


class UnsupportedFormatError(InvalidEventError):
    """Structured or batched mode in an event format other than JSON (answer 415)."""


def detect_mode(content_type: str | None) -> Mode:
    if content_type is None:
        return Mode.BINARY
    lowered = content_type.lstrip().lower()
    if lowered.startswith("application/cloudevents-batch"):
        _require_json(lowered, "application/cloudevents-batch")
        return Mode.BATCH
    if lowered.startswith("application/cloudevents"):
        _require_json(lowered, "application/cloudevents")
        return Mode.STRUCTURED
    return Mode.BINARY


def _require_json(lowered: str, prefix: str) -> None:
    media = lowered.split(";", 1)[0].strip()
    if media not in (prefix, prefix + "+json"):
        raise UnsupportedFormatError(f"event format {media!r} is not supported; use {prefix}+json")


def decode_binary(
    header_items: Iterable[tuple[str, str]], content_type: str | None, body: bytes
) -> Event:
    """Build an event from a binary-mode request's headers and body."""
    attributes: dict[str, AttributeValue] = {}
    for key, raw in header_items:
        lowered = key.lower()
        if not lowered.startswith(_CE_PREFIX):
            continue
        name = lowered[3:]
        if name in attributes:
            raise InvalidEventError(f"header ce-{name[:40]} appears more than once")
        attributes[name] = hv.decode_value(name, raw)
    declared = attributes.pop("datacontenttype", None)
    if content_type is not None:
        if declared is not None and declared != content_type:
            raise InvalidEventError(
                "ce-datacontenttype must not be sent in binary mode (use Content-Type)"
            )
        attributes["datacontenttype"] = content_type
    elif declared is not None:
        attributes["datacontenttype"] = declared
    validate(attributes)
    return Event(attributes, body if body else None)


def encode_binary(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of the binary-mode form of ``event``."""
    out: dict[str, str] = {}
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            out["Content-Type"] = str(value)
        else:
            out[_CE_PREFIX + name] = hv.encode_value(canonical(value))
    return out, event.data or b""


_LINE_STARTS: dict[str, str] = {}
"""``ce-NAME: `` by attribute name, made once per name (names are at most 20
characters; the table stops growing at a few hundred)."""


def binary_head(event: Event) -> bytes:
    """The header lines (each ending CRLF) of the binary-mode form of ``event``: the
    same headers as :func:`encode_binary`, as the bytes a request carries. The
    delivery hot path: one check that no value needs percent-encoding (the usual
    case) over all of them at once, and one join and encode for the whole block."""
    parts: list[str] = []
    values: list[str] = []
    content_type: AttributeValue | None = None
    starts = _LINE_STARTS
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            content_type = value
            continue
        text = value if type(value) is str else canonical(value)
        start = starts.get(name)
        if start is None:
            start = _CE_PREFIX + name + ": "
            if len(starts) < 512:
                starts[name] = start
        values.append(text)
        parts.append(start)
        parts.append(text)
        parts.append("\r\n")
    if hv.needs_encoding("".join(values)) is not None:
        for i in range(1, len(parts), 3):
            parts[i] = hv.encode_value(parts[i])
    if content_type is not None:
        parts.append("Content-Type: ")
        parts.append(str(content_type))
        parts.append("\r\n")
    return "".join(parts).encode()


def encode_structured(event: Event) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": STRUCTURED_JSON}, to_json_bytes(event)


def has_ce_headers(header_items: Mapping[str, str]) -> bool:
    return any(k.lower() == "ce-specversion" for k in header_items)
