"""The event as the broker sees it: context attributes plus opaque data bytes.

Why not the cloudevents SDK's ``CloudEvent`` on the hot path: the broker never looks
inside ``data`` (design §4, "Hot path"); it stores and forwards bytes. Decoding a
binary HTTP request into an SDK event and encoding it again costs more than the rest
of our ingress path together, and buys nothing the broker uses. So the core keeps a
plain attribute map and the payload bytes, validates the attributes once at the edge
(``validate``), and uses the SDK only at the edges where it serves (conformance
cross-checks, source bindings).

Attribute values keep the type they arrived with: every attribute read from an HTTP
header is a ``str``; structured JSON may carry ``int`` and ``bool`` extensions. Filters
compare the canonical string form (``canonical``); CESQL casts as its spec says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from eventing.errors import InvalidEventError

AttributeValue = str | int | bool

SPECVERSIONS: Final = frozenset({"1.0", "0.3"})
REQUIRED: Final = ("specversion", "id", "source", "type")
#: Attributes whose value must be a string (spec §3.1); extensions may be int or bool.
STRING_ATTRIBUTES: Final = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "datacontenttype",
        "dataschema",
        "schemaurl",
        "subject",
        "time",
        "datacontentencoding",
    }
)
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

# Extensions the broker itself adds (Knative names, so tools that know Knative read them).
ARRIVAL_TIME: Final = "knativearrivaltime"
TTL: Final = "knativebrokerttl"
PARTITION_KEY: Final = "partitionkey"

# json.dumps(value, separators=...) builds a new encoder on every call (about a third
# of its cost for an event's attributes); this one is built once, same output.
_compact = json.JSONEncoder(separators=(",", ":")).encode

_NAME = re.compile(r"[a-z0-9]{1,20}\Z")
# Characters a CloudEvents String must not contain (spec §3.1.1 "Type System").
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff\ud800-\udfff]")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


@dataclass(slots=True)
class Event:
    """A CloudEvent: attributes (required, optional and extensions) and data bytes.

    ``data is None`` means the event has no data. ``datacontenttype`` lives in
    ``attributes`` like every other attribute.
    """

    attributes: dict[str, AttributeValue]
    data: bytes | None = None
    #: Broker-assigned storage position; 0 until stored. Not a CloudEvents attribute.
    seq: int = field(default=0, compare=False)
    #: The attributes as compact JSON, when they arrived that way and were not changed
    #: since (an ingress worker's frame): the store writes it instead of encoding again.
    encoded: str | None = field(default=None, compare=False, repr=False)
    #: When the broker accepted it (``time.time()``), for the latency metric without
    #: parsing ``knativearrivaltime``; 0 for an event read back from the store until
    #: that is parsed (once: :func:`eventing.delivery.stamps.arrival`).
    arrived: float = field(default=0.0, compare=False, repr=False)
    #: Whether the broker deduplicates it on (source, id), and in which window
    #: (:mod:`eventing.broker.dedup`): a scope name (a source's), ``""`` never (an id
    #: not from upstream), ``None`` as the broker's setting for plain POSTs says.
    dedup: str | None = field(default=None, compare=False, repr=False)
    #: Set by the broker's deduplication when it answered this event as accepted but did
    #: not store it (its (source, id) was stored before): ``eventing tail`` marks it.
    duplicate: bool = field(default=False, compare=False, repr=False)

    @property
    def id(self) -> str:
        return str(self.attributes["id"])

    @property
    def source(self) -> str:
        return str(self.attributes["source"])

    @property
    def type(self) -> str:
        return str(self.attributes["type"])

    @property
    def specversion(self) -> str:
        return str(self.attributes["specversion"])

    @property
    def datacontenttype(self) -> str | None:
        value = self.attributes.get("datacontenttype")
        return None if value is None else str(value)

    def get(self, name: str) -> AttributeValue | None:
        return self.attributes.get(name)

    def copy(self) -> Event:
        return Event(dict(self.attributes), self.data)

    def attributes_json(self) -> str:
        """The attributes as compact JSON (reusing :attr:`encoded` when set)."""
        if self.encoded is not None:
            return self.encoded
        return _compact(self.attributes)


def canonical(value: AttributeValue) -> str:
    """The canonical string form of an attribute value (spec §3.1.1)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_KNOWN_NAMES: set[str] = set(REQUIRED) | STRING_ATTRIBUTES


def is_valid_name(name: str) -> bool:
    """Attribute names: lowercase a-z and 0-9, 1 to 20 characters, and never ``data``."""
    if name in _KNOWN_NAMES:
        return True
    if name == "data" or _NAME.match(name) is None:
        return False
    if len(_KNOWN_NAMES) < 4096:  # names repeat: remember the valid ones, bounded
        _KNOWN_NAMES.add(name)
    return True


def validate(attributes: Mapping[str, AttributeValue]) -> None:
    """Check an event's attributes against the CloudEvents spec; raise on the first batch
    of problems, all of them named in one message.

    Raises :class:`InvalidEventError`.
    """
    problems: list[str] = []
    for name in REQUIRED:
        value = attributes.get(name)
        if value is None or value == "":
            problems.append(f"required attribute {name!r} is missing or empty")
    specversion = attributes.get("specversion")
    if specversion is not None and specversion != "" and specversion not in SPECVERSIONS:
        problems.append(f"specversion {specversion!r} is not supported (allowed: 1.0, 0.3)")
    _check_names_and_values(attributes, problems)
    if problems:
        raise InvalidEventError("; ".join(problems))


def validate_some(attributes: Mapping[str, AttributeValue]) -> None:
    """:func:`validate` without the required attributes: for the part of an event a
    binding took from outside input, when it built the rest itself from values that
    cannot be invalid (a source's wrapping: ids from offsets, its own source and type).

    Raises :class:`InvalidEventError`.
    """
    problems: list[str] = []
    _check_names_and_values(attributes, problems)
    if problems:
        raise InvalidEventError("; ".join(problems))


def _check_names_and_values(attributes: Mapping[str, AttributeValue], problems: list[str]) -> None:
    for name, value in attributes.items():
        if not is_valid_name(name):
            problems.append(
                f"attribute name {name[:40]!r} is invalid "
                "(lowercase a-z and 0-9, at most 20 characters, not 'data')"
            )
            continue
        problems.extend(_check_value(name, value))


def _check_value(name: str, value: AttributeValue) -> list[str]:
    if isinstance(value, bool):
        if name in STRING_ATTRIBUTES:
            return [f"attribute {name!r} must be a string"]
        return []
    if isinstance(value, int):
        if name in STRING_ATTRIBUTES:
            return [f"attribute {name!r} must be a string"]
        if not INT32_MIN <= value <= INT32_MAX:
            return [f"extension {name!r} = {value} is outside the 32-bit Integer range"]
        return []
    if not isinstance(value, str):
        return [f"attribute {name!r} has unsupported type {type(value).__name__}"]
    if not (value.isascii() and value.isprintable()) and _FORBIDDEN_CHARS.search(value):
        return [f"attribute {name!r} contains a control or non-character code point"]
    if name == "subject" and value == "":
        return ["attribute 'subject' must not be empty when present"]
    if name == "time" and not _is_rfc3339(value):
        return [f"attribute 'time' = {value[:40]!r} is not an RFC 3339 timestamp"]
    return []


def _is_rfc3339(value: str) -> bool:
    if _RFC3339.match(value) is None:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True
