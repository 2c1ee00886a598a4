"""Kafka record -> CloudEvent: the CloudEvents Kafka protocol binding, plus Knative
KafkaSource's wrapping of records that are not CloudEvents. Pure functions.

Mode detection follows the binding spec (not the SDK's "any ``ce_`` header" shortcut):
a ``content-type`` header starting with ``application/cloudevents`` is structured mode;
otherwise a ``ce_specversion`` header means binary mode; otherwise the record is not
a CloudEvent and is wrapped the way Knative's KafkaSource does:

=============== =========================================================
``type``        ``dev.knative.kafka.event``
``source``      ``/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>``
``id``          ``partition:<p>/offset:<o>`` (stable: a redelivery dedupes)
``subject``     ``partition:<p>#<o>``
``time``        the record timestamp, when it has one
``key``         the record key, typed by the ``kafkasources.sources.knative.dev/key-type``
                label (string, int, float, byte-array as base64)
``partitionkey`` the key as text, so per-key ordering survives into the broker
``kafkaheader<name>`` each header whose lower-cased alphanumeric name fits an
                attribute name (20 characters); others are left out
=============== =========================================================

In both CloudEvent modes a record key becomes ``partitionkey`` when the event does
not carry one (the inverse of the binding's default key mapper).
"""

from __future__ import annotations

import base64
import functools
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from eventing.errors import InvalidEventError
from eventing.events import AttributeValue, Event, validate_some
from sources.support.binding import (
    PARTITION_KEY,
    add_partition_key,
    decode_structured,
    finish,
    from_epoch_ms,
    header_value,
    is_structured,
)

CE_PREFIX: Final = "ce_"
CONTENT_TYPE: Final = "content-type"
EVENT_TYPE: Final = "dev.knative.kafka.event"
HEADER_EXTENSION_PREFIX: Final = "kafkaheader"
KeyType = Literal["string", "int", "float", "byte-array"]
KEY_TYPES: Final = ("string", "int", "float", "byte-array")

_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """The parts of a consumed record the mapping reads (client-library independent)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)
    timestamp_ms: int | None = None


def record_to_event(record: KafkaRecord, source_prefix: str, key_type: KeyType = "string") -> Event:
    """Decode a record as a CloudEvent (binary or structured) or wrap it.

    ``source_prefix`` is ``/apis/v1/namespaces/<ns>/kafkasources/<name>``.
    Raises :class:`InvalidEventError` for a record that claims to be a CloudEvent but
    is not a valid one.
    """
    content_type = header(record, CONTENT_TYPE)
    if is_structured(content_type):
        return add_partition_key(decode_structured(record.value, content_type), record.key)
    if any(name.lower() == CE_PREFIX + "specversion" for name, _ in record.headers):
        return add_partition_key(decode_binary(record), record.key)
    return wrap(record, source_prefix, key_type)


def header(record: KafkaRecord, name: str) -> str | None:
    """The last header of that name (case-insensitive) as text, or None."""
    found: str | None = None
    for key, value in record.headers:
        if key.lower() == name:
            found = str(header_value(name, value))
    return found


def decode_binary(record: KafkaRecord) -> Event:
    """Binary mode: ``ce_<name>`` headers are attributes, ``content-type`` is
    ``datacontenttype``, the value is the data (a null value means no data)."""
    attributes: dict[str, AttributeValue] = {}
    for raw_name, raw_value in record.headers:
        name = raw_name.lower()
        if name.startswith(CE_PREFIX):
            attr = name[len(CE_PREFIX) :]
            attributes[attr] = header_value(attr, raw_value)
        elif name == CONTENT_TYPE:
            attributes["datacontenttype"] = header_value("datacontenttype", raw_value)
    return finish(attributes, record.value)


def wrap(record: KafkaRecord, source_prefix: str, key_type: KeyType = "string") -> Event:
    """Knative KafkaSource's CloudEvent for a plain record (see the module docstring).

    Only what comes from the record's headers and key is validated (per record, the
    larger part of decoding): the id, subject and time are built from integers, the
    source from the validated resource and the topic (Kafka allows ``[A-Za-z0-9._-]``
    in topic names)."""
    p, o = record.partition, record.offset
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": f"partition:{p}/offset:{o}",
        "source": f"{source_prefix}#{record.topic}",
        "type": EVENT_TYPE,
        "subject": f"partition:{p}#{o}",
    }
    if record.timestamp_ms is not None and record.timestamp_ms >= 0:
        attributes["time"] = _time(record.timestamp_ms)
    outside: dict[str, AttributeValue] = {}
    for raw_name, raw_value in record.headers:
        if raw_name.lower() == CONTENT_TYPE:
            outside["datacontenttype"] = header_value("datacontenttype", raw_value)
            continue
        extension = HEADER_EXTENSION_PREFIX + _NOT_ALNUM.sub("", raw_name.lower())
        if len(extension) <= 20 and extension != HEADER_EXTENSION_PREFIX:
            try:
                outside[extension] = str(header_value(extension, raw_value))
            except InvalidEventError:
                continue  # a binary header value cannot be a String attribute
    if record.key is not None:
        key = decode_key(record.key, key_type)
        if key is not None:
            outside["key"] = key
            if key_type == "string":
                outside[PARTITION_KEY] = key
    if outside:
        validate_some(outside)
        attributes.update(outside)
    if _TOPIC.fullmatch(record.topic) is None:  # not from a Kafka server: check it all
        return finish(attributes, record.value)
    return Event(attributes, record.value)


class PlainWrap:
    """:func:`wrap` of a record without headers, for one source and key type: the
    per-record part of decoding for the usual plain record, with the source string of
    each topic made once. Returns None where :func:`wrap` must decide (a key that is
    not printable ASCII text, a key type other than ``string``, a topic name no Kafka
    server would send): the result is otherwise exactly :func:`wrap`'s."""

    __slots__ = ("_key_type", "_prefix", "_sources")

    def __init__(self, source_prefix: str, key_type: KeyType = "string") -> None:
        self._prefix = source_prefix
        self._key_type = key_type
        self._sources: dict[str, str | None] = {}

    def __call__(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        key: bytes | None,
        timestamp_ms: int | None,
    ) -> Event | None:
        source = self._sources.get(topic)
        if source is None:
            if topic in self._sources or len(self._sources) >= 1024:
                return None
            valid = _TOPIC.fullmatch(topic) is not None
            source = f"{self._prefix}#{topic}" if valid else None
            self._sources[topic] = source
            if source is None:
                return None
        attributes: dict[str, AttributeValue] = {
            "specversion": "1.0",
            "id": f"partition:{partition}/offset:{offset}",
            "source": source,
            "type": EVENT_TYPE,
            "subject": f"partition:{partition}#{offset}",
        }
        if timestamp_ms is not None and timestamp_ms >= 0:
            attributes["time"] = _time(timestamp_ms)
        if key is not None:
            if self._key_type != "string":
                return None
            try:
                text = key.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if text:
                if not (text.isascii() and text.isprintable()):
                    return None
                attributes["key"] = text
                attributes[PARTITION_KEY] = text
        return Event(attributes, value)


@functools.lru_cache(maxsize=64)
def _time(ms: int) -> str:
    """:func:`from_epoch_ms`, remembered: the records of one produced batch usually
    share their millisecond."""
    return from_epoch_ms(ms)


def decode_key(key: bytes, key_type: KeyType) -> str | None:
    """The key as text per Knative's key-type label; None when it cannot be one."""
    if key_type == "byte-array":
        return base64.b64encode(key).decode("ascii")
    if key_type == "int" and len(key) in (1, 2, 4, 8):
        return str(int.from_bytes(key, "big", signed=True))
    if key_type == "float" and len(key) in (4, 8):
        (number,) = struct.unpack(">f" if len(key) == 4 else ">d", key)
        return repr(number)
    if key_type == "string":
        try:
            return key.decode("utf-8") or None
        except UnicodeDecodeError:
            return None
    return None
