"""Decoding a received MQTT PUBLISH into an :class:`MqttMessage`. Pure.

Why our own decoder rather than paho's: paho builds a full ``Properties`` object per
message, which cost more than all the rest of the source's work together (about
40 % of its time, profiled at 20,000 messages), and it refuses packets that MQTT
allows: a UTF-8 string containing U+FEFF, which MQTT 5 says must be kept as is
([MQTT-1.5.4-3]) and Mosquitto forwards, makes paho drop the connection. Here only
what the source reads is kept (topic, packet id, Content Type, User Properties,
payload); the other PUBLISH properties are checked for their framing and skipped.

A packet that is not a valid PUBLISH raises :class:`Malformed`; when its topic and
packet id can still be read (:func:`read_poison`) the source acknowledges it and
counts it, otherwise the connection has to be dropped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from sources.mqtt.binding import MqttMessage

BYTE, TWO, FOUR, VARINT, UTF8, BINARY, PAIR = range(7)
PUBLISH_PROPERTIES: Final = {
    0x01: BYTE,  # Payload Format Indicator
    0x02: FOUR,  # Message Expiry Interval
    0x03: UTF8,  # Content Type
    0x08: UTF8,  # Response Topic
    0x09: BINARY,  # Correlation Data
    0x0B: VARINT,  # Subscription Identifier
    0x23: TWO,  # Topic Alias
    0x26: PAIR,  # User Property
}
CONTENT_TYPE: Final = 0x03
FIXED: Final = {BYTE: 1, TWO: 2, FOUR: 4}


class Malformed(ValueError):
    """Not a valid PUBLISH packet."""


@dataclass(frozen=True, slots=True)
class Poison:
    """A PUBLISH that cannot be decoded, but can be acknowledged; ``topic`` is for
    logs only (undecodable bytes escaped)."""

    mid: int
    qos: int
    topic: str
    reason: str


def decode_publish(header: int, packet: bytes | bytearray, v5: bool) -> MqttMessage:
    """``header`` is the fixed header's first byte, ``packet`` what follows the
    remaining length. Raises :class:`Malformed`."""
    qos = (header >> 1) & 0x03
    if qos == 3:
        raise Malformed("QoS 3")
    view = memoryview(packet)
    try:
        topic, pos = _utf8(view, 0)
        mid = 0
        if qos:
            (mid,) = struct.unpack_from("!H", view, pos)
            pos += 2
            if mid == 0:
                raise Malformed("packet id 0")
        content_type: str | None = None
        users: list[tuple[str, str]] = []
        if v5:
            length, pos = _varint(view, pos)
            end = pos + length
            if end > len(view):
                raise Malformed("properties longer than the packet")
            while pos < end:
                ident, pos = _varint(view, pos)
                kind = PUBLISH_PROPERTIES.get(ident)
                if kind is None:
                    raise Malformed(f"property {ident:#x} is not allowed in PUBLISH")
                if kind in FIXED:
                    pos += FIXED[kind]
                elif kind == VARINT:
                    _, pos = _varint(view, pos)
                elif kind == BINARY:
                    (size,) = struct.unpack_from("!H", view, pos)
                    pos += 2 + size
                elif kind == UTF8:
                    value, pos = _utf8(view, pos)
                    if ident == CONTENT_TYPE:
                        content_type = value
                else:  # PAIR
                    name, pos = _utf8(view, pos)
                    value, pos = _utf8(view, pos)
                    users.append((name, value))
            if pos != end:
                raise Malformed("a property runs past the property length")
    except struct.error as exc:
        raise Malformed(f"truncated: {exc}") from None
    if not topic:
        raise Malformed("empty topic (topic aliases are not negotiated)")
    return MqttMessage(topic, bytes(view[pos:]), qos, mid, content_type, tuple(users))


def read_poison(header: int, packet: bytes | bytearray, reason: str) -> Poison | None:
    """Topic and packet id of an undecodable PUBLISH, or None when even those cannot
    be read (then it cannot be acknowledged)."""
    qos = (header >> 1) & 0x03
    if qos > 1 or len(packet) < 2:
        return None
    (length,) = struct.unpack_from("!H", packet)
    mid = 0
    if qos == 1:
        if len(packet) < 2 + length + 2:
            return None
        (mid,) = struct.unpack_from("!H", packet, 2 + length)
        if mid == 0:
            return None
    topic = bytes(packet[2 : 2 + length]).decode("utf-8", "backslashreplace")[:120]
    return Poison(mid, qos, topic, reason[:200])


def _utf8(view: memoryview, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("!H", view, pos)
    start, end = pos + 2, pos + 2 + size
    if end > len(view):
        raise Malformed("string longer than the packet")
    try:
        return str(view[start:end], "utf-8"), end
    except UnicodeDecodeError as exc:
        raise Malformed(f"invalid UTF-8: {exc.reason}") from None


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= len(view):
            raise Malformed("truncated variable byte integer")
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise Malformed("variable byte integer longer than 4 bytes")
