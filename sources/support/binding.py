"""Helpers the broker bindings (Kafka, RabbitMQ, MQTT) share: content-mode detection,
typed header values, stable ids, timestamps.

Why shared: each binding differs in where attributes live (``ce_`` headers, ``ce-``
headers, MQTT 5 user properties) but not in what a structured body is, how an
attribute value read from a header is typed, or how a redelivered message keeps its
id. Everything here is pure and bounded by the size of the message given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from eventing.codec.jsonformat import parse_structured
from eventing.errors import InvalidEventError
from eventing.events import STRING_ATTRIBUTES, AttributeValue, Event, validate

STRUCTURED_PREFIX: Final = "application/cloudevents"
JSON_FORMAT: Final = "application/cloudevents+json"
PARTITION_KEY: Final = "partitionkey"


def media_type(content_type: str | None) -> str:
    """The lower-cased media type without parameters ("" when absent)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_structured(content_type: str | None) -> bool:
    """Structured mode: the content type starts with ``application/cloudevents``
    (case-insensitive), as every binding's mode detection says."""
    media = media_type(content_type)
    return media.startswith(STRUCTURED_PREFIX) and media != STRUCTURED_PREFIX + "-batch+json"


def decode_structured(body: bytes | None, content_type: str | None) -> Event:
    """A structured-mode message in the JSON event format (the only format we read)."""
    media = media_type(content_type)
    if media not in ("", JSON_FORMAT):
        raise InvalidEventError(f"event format {media[:60]!r} is not supported (only JSON)")
    if body is None:
        raise InvalidEventError("a structured-mode message has no body")
    return parse_structured(body)


def looks_like_structured_json(body: bytes) -> bool:
    """Cheap pre-check before parsing a body that has no content type (MQTT 3.1.1)."""
    head = body.lstrip()[:1]
    return head == b"{" and b'"specversion"' in body


def header_value(name: str, value: object) -> AttributeValue:
    """Type an attribute read from a header: bytes are UTF-8 text; AMQP headers may also
    carry booleans, integers and timestamps. Context attributes are strings (spec §3.1),
    so those become their canonical string form."""
    result: AttributeValue
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            result = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEventError(f"attribute {name!r} is not valid UTF-8") from None
    elif isinstance(value, str | bool | int):
        result = value
    elif isinstance(value, datetime):
        result = rfc3339(value)
    elif isinstance(value, Decimal | float):
        result = str(value)
    else:
        raise InvalidEventError(f"attribute {name!r} has unsupported type {type(value).__name__}")
    if name in STRING_ATTRIBUTES and not isinstance(result, str):
        result = ("true" if result else "false") if isinstance(result, bool) else str(result)
    return result


def finish(attributes: dict[str, AttributeValue], data: bytes | None) -> Event:
    """Validate the attributes and build the event (data stays opaque bytes)."""
    validate(attributes)
    return Event(attributes, data)


def add_partition_key(event: Event, key: bytes | None) -> Event:
    """The record/message key becomes ``partitionkey`` unless the event carries one
    (the inverse of the binding's default key mapper)."""
    if key is None or PARTITION_KEY in event.attributes:
        return event
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return event  # a binary key cannot be a String attribute; leave it out
    if text:
        event.attributes[PARTITION_KEY] = text
    return event


def stable_id(prefix: str, parts: Iterable[bytes | str | None]) -> str:
    """A deterministic id from what a message carries, so a redelivery of the same
    message gets the same id and can be deduplicated on (source, id)."""
    digest = hashlib.sha256()
    for part in parts:
        raw = b"\xff" if part is None else part.encode() if isinstance(part, str) else part
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return f"{prefix}-{digest.hexdigest()[:32]}"


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` (naive datetimes are taken as UTC, as AMQP's are)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def from_epoch_ms(ms: int) -> str:
    return rfc3339(datetime.fromtimestamp(ms / 1000, tz=UTC))
