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

Headers seen before (:class:`Known`): most attributes of a broker's events repeat
(``specversion``, ``source``, ``type``, the TTL, most extensions); only a few are new
per event (``id``, the times, trace context). A header written or read once is kept
(bounded) with its encoding or its decoded and already validated attribute, so each
record costs the work of its new values only: the same checks, done once per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

from brokers.support import restore_types
from eventing.codec.jsonformat import parse_structured
from eventing.errors import InvalidEventError
from eventing.events import (
    PARTITION_KEY,
    REQUIRED,
    SPECVERSIONS,
    AttributeValue,
    Event,
    canonical,
    validate,
    validate_some,
)

CE: Final = "ce_"
_CE_LEN: Final = len(CE)
CONTENT_TYPE: Final = "content-type"
TARGET: Final = "eventing-target"
TYPES: Final = "eventing-types"
NO_DATA: Final = "eventing-nodata"
MAX_HEADERS: Final = 256

Headers = list[tuple[str, bytes]]
_K = TypeVar("_K")
_V = TypeVar("_V")

PER_EVENT: Final = frozenset(
    {"id", "time", "knativearrivaltime", "traceparent", "tracestate", PARTITION_KEY}
)
"""Attributes whose values are (nearly) new with every event: never kept."""
KEEP_BYTES: Final = 256
"""Longest header value kept."""


class Known(dict[_K, _V]):
    """Headers seen before, bounded: emptied when full (values that repeat are back
    after a few events, values that never do cannot crowd them out for good)."""

    def __init__(self, limit: int = 4096) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: _K, value: _V) -> None:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value


_WRITTEN: Known[tuple[str, str], tuple[str, bytes]] = Known()
"""(attribute name, text value) -> its header, for :func:`to_record`."""
_READ: Known[tuple[str, bytes], tuple[str, AttributeValue]] = Known()
"""A header (name, raw value) -> (attribute name, value) that decoded and validated,
for :func:`read_record`."""
_CONTENT_TYPES: Known[str, None] = Known()
"""``content-type`` values that passed as ``datacontenttype``."""


def to_record(
    event: Event, extra: dict[str, str] | None = None
) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) of ``event``."""
    headers: Headers = []
    typed: list[str] = []
    known = _WRITTEN
    for name, value in event.attributes.items():
        if type(value) is str:  # not bool or int: (name, True) == (name, 1) as keys
            header = known.get((name, value))
            if header is None:
                header = (CONTENT_TYPE if name == "datacontenttype" else CE + name, value.encode())
                if name not in PER_EVENT and len(value) <= KEEP_BYTES:
                    known.keep((name, value), header)
            headers.append(header)
            continue
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
        if name == TARGET and isinstance(raw, bytes):
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
    fresh: list[tuple[str, bytes]] = []
    types = ""
    content_type: str | None = None
    no_data = False
    target: str | None = None
    known = _READ
    try:
        for header in headers:
            seen = known.get(header)
            if seen is not None:
                attributes[seen[0]] = seen[1]
                continue
            name, raw = header
            if name.startswith(CE):
                attributes[name[_CE_LEN:]] = raw.decode("utf-8")
                fresh.append(header)
            elif name == CONTENT_TYPE:
                content_type = raw.decode("utf-8")
            elif name == NO_DATA:
                no_data = True
            elif name == TYPES:
                types = raw.decode()
            elif name == TARGET:
                target = raw.decode("utf-8", "replace")
    except (UnicodeDecodeError, AttributeError):  # AttributeError: a null header value
        if trigger is not None and replay_target(headers) not in (None, trigger):
            return None
        raise InvalidEventError("a header is not UTF-8 text") from None
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
        validate(attributes)  # typed values: checked whole, nothing kept
    else:
        _validate_new(attributes, fresh, content_type)
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return Event(attributes, None if no_data else value)


def _validate_new(
    attributes: dict[str, AttributeValue], fresh: list[tuple[str, bytes]], content_type: str | None
) -> None:
    """:func:`~eventing.events.validate` of ``attributes`` (plus ``datacontenttype``)
    where every attribute but those of the ``fresh`` headers passed it before: the
    required ones and the spec version are checked here, the values only of the
    fresh headers (and a content type not seen before); those are then kept. Any
    doubt: the whole check."""
    complete = attributes.get("specversion") in SPECVERSIONS
    for name in REQUIRED:
        if not attributes.get(name):
            complete = False
    if not complete:
        if content_type is not None:
            attributes["datacontenttype"] = content_type
        validate(attributes)  # raises, naming every problem
        return
    new: dict[str, AttributeValue] = {}
    for name, _ in fresh:
        new[name[_CE_LEN:]] = attributes[name[_CE_LEN:]]
    if content_type is not None and content_type not in _CONTENT_TYPES:
        new["datacontenttype"] = content_type
    if new:
        validate_some(new)
    for header in fresh:
        name = header[0][_CE_LEN:]
        if name not in PER_EVENT and len(header[1]) <= KEEP_BYTES:
            _READ.keep(header, (name, attributes[name]))
    if content_type is not None and len(content_type) <= KEEP_BYTES:
        _CONTENT_TYPES.keep(content_type, None)
