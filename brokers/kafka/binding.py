"""An event as a Kafka record and back: the CloudEvents Kafka protocol binding in
binary mode (``ce_<name>`` headers, ``content-type`` for ``datacontenttype``, the data
bytes as the value, ``partitionkey`` as the record key so one key stays in one
partition, in order). Pure; no client library.

The broker's own headers (never attributes): ``eventing-target`` sends a replayed
event to one trigger only; ``eventing-types`` keeps the type of an ``int`` or
``bool`` extension (headers are text), and ``eventing-nodata`` marks an event without
data (aiokafka needs a key or a value), so an event comes out as it went in.
A record on the topic that is not a CloudEvent (someone else produced it) raises
:class:`InvalidEventError`; the subscription dead-letters it with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from brokers.support import restore_types
from eventing.codec.jsonformat import parse_structured
from eventing.errors import InvalidEventError
from eventing.events import PARTITION_KEY, AttributeValue, Event, canonical, validate

CE: Final = "ce_"
_CE_LEN: Final = len(CE)
CONTENT_TYPE: Final = "content-type"
TARGET: Final = "eventing-target"
TYPES: Final = "eventing-types"
NO_DATA: Final = "eventing-nodata"
MAX_HEADERS: Final = 256

Headers = list[tuple[str, bytes]]


def to_record(
    event: Event, extra: dict[str, str] | None = None
) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) of ``event``."""
    headers: Headers = []
    typed: list[str] = []
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            headers.append((CONTENT_TYPE, str(value).encode()))
            continue
        if not isinstance(value, str):
            typed.append(f"{name}={'bool' if isinstance(value, bool) else 'int'}")
        headers.append((CE + name, canonical(value).encode()))
    if typed:
        headers.append((TYPES, ",".join(typed).encode()))
    if event.data is None:  # a record needs a key or a value: no data is marked
        headers.append((NO_DATA, b"1"))
    for name, text in (extra or {}).items():
        headers.append((name, text.encode()))
    key = event.attributes.get(PARTITION_KEY)
    return (None if key is None else canonical(key).encode()), event.data or b"", headers


def header_map(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The broker's own (non-``ce_``) headers as text."""
    out: dict[str, str] = {}
    for name, raw in headers[:MAX_HEADERS]:
        if not name.startswith(CE):
            out[name] = raw.decode("utf-8", "replace")
    return out


def replay_target(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The trigger a replayed record is for (``eventing-target``), if any."""
    for name, raw in headers[:MAX_HEADERS]:
        if name == TARGET:
            return raw.decode("utf-8", "replace")
    return None


def from_record(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Event:
    """The event of a record we wrote (or any binary- or structured-mode CloudEvent)."""
    event = read_record(value, headers, None)
    assert event is not None  # only a trigger's read skips a replay for another
    return event


def read_record(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], trigger: str | None
) -> Event | None:
    """:func:`from_record` for ``trigger``'s consumer, in one pass over the headers:
    None for a replay meant for another trigger (``eventing-target``), which is
    neither decoded further nor validated. ``trigger`` None reads every record."""
    if len(headers) > MAX_HEADERS:
        raise InvalidEventError(f"{len(headers)} headers (at most {MAX_HEADERS})")
    attributes: dict[str, AttributeValue] = {}
    types = ""
    content_type: str | None = None
    no_data = False
    target: str | None = None
    try:
        for name, raw in headers:
            if name.startswith(CE):
                attributes[name[_CE_LEN:]] = raw.decode("utf-8")
            elif name == CONTENT_TYPE:
                content_type = raw.decode("utf-8")
            elif name == NO_DATA:
                no_data = True
            elif name == TYPES:
                types = raw.decode()
            elif name == TARGET:
                target = raw.decode("utf-8", "replace")
    except UnicodeDecodeError:
        if trigger is not None and replay_target(headers) not in (None, trigger):
            return None
        raise InvalidEventError("a header is not UTF-8") from None
    if trigger is not None and target is not None and target != trigger:
        return None
    if not attributes and content_type and content_type.startswith("application/cloudevents"):
        try:
            return parse_structured(value or b"")
        except (ValueError, TypeError) as exc:
            raise InvalidEventError(f"structured record: {exc}") from None
    if not attributes:
        raise InvalidEventError("not a CloudEvent: no ce_ headers and not structured mode")
    if types:
        restore_types(attributes, types)
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    validate(attributes)
    return Event(attributes, None if no_data else value)
