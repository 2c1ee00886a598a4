"""Our PUBLISH decoder (sources/mqtt/packets.py) against packets built with paho's own
property encoder, and the packets it must refuse: what can be acknowledged as poison
(topic and packet id readable) and what cannot."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sources.mqtt.binding import MqttMessage
from sources.mqtt.packets import Malformed, Poison, decode_publish, read_poison

QOS1 = 0x32
QOS0 = 0x30


def string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def publish(topic: bytes, mid: int | None, properties: bytes | None, payload: bytes) -> bytes:
    body = string(topic)
    if mid is not None:
        body += struct.pack("!H", mid)
    if properties is not None:
        body += properties
    return body + payload


def paho_properties(**values: object) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    packed: bytes = props.pack()  # type: ignore[no-untyped-call]
    return packed


def test_every_publish_property_paho_encodes_is_read_or_skipped() -> None:
    props = paho_properties(
        PayloadFormatIndicator=1,
        MessageExpiryInterval=3600,
        ContentType="application/json",
        ResponseTopic="replies/1",
        CorrelationData=b"\x00\x01corr",
        SubscriptionIdentifier=[300],
        UserProperty=[("specversion", "1.0"), ("id", "e-1"), ("id", "dup")],
    )
    message = decode_publish(QOS1, publish(b"sensors/a", 7, props, b'{"t":1}'), v5=True)
    assert message == MqttMessage(
        "sensors/a",
        b'{"t":1}',
        1,
        7,
        "application/json",
        (("specversion", "1.0"), ("id", "e-1"), ("id", "dup")),
    )


def test_mqtt311_and_qos0() -> None:
    assert decode_publish(QOS1, publish(b"a/b", 9, None, b"x"), v5=False) == MqttMessage(
        "a/b", b"x", 1, 9
    )
    message = decode_publish(QOS0, publish(b"a/b", None, b"\x00", b""), v5=True)
    assert (message.qos, message.mid, message.payload) == (0, 0, b"")


def test_u_feff_is_kept_as_mqtt_requires() -> None:
    # paho refuses this packet; MQTT 5 1.5.4-3 says U+FEFF must not be stripped
    props = b"\x26" + string(b"note") + string("a\ufeffb".encode())
    prefix = struct.pack("B", len(props))
    message = decode_publish(QOS1, publish(b"t", 1, prefix + props, b"p"), v5=True)
    assert message.user_properties == (("note", "a\ufeffb"),)


@pytest.mark.parametrize(
    ("packet", "poison"),
    [
        # invalid UTF-8 in a user property: skippable, the packet id is readable
        (publish(b"t/1", 5, b"\x07\x26" + string(b"k") + string(b"\xff\xfe"), b""), True),
        # invalid UTF-8 in the content type
        (publish(b"t/1", 5, b"\x04\x03" + string(b"\xc3"), b""), True),
        # invalid UTF-8 in the topic
        (publish(b"t/\xff", 5, b"\x00", b"x"), True),
        # a property PUBLISH must not carry (0x11 session expiry)
        (publish(b"t/1", 5, b"\x05\x11\x00\x00\x00\x01", b""), True),
        # property length past the end of the packet
        (publish(b"t/1", 5, b"\x40", b""), True),
        # topic alias without a topic (aliases are not negotiated)
        (publish(b"", 5, b"\x03\x23\x00\x01", b""), True),
        # the topic length runs past the packet: no packet id, cannot be acknowledged
        (struct.pack("!H", 300) + b"t/1", False),
        # packet id 0 is not a packet id
        (publish(b"t/1", 0, b"\x00", b""), False),
    ],
)
def test_malformed_publish(packet: bytes, poison: bool) -> None:
    with pytest.raises(Malformed) as error:
        decode_publish(QOS1, packet, v5=True)
    found = read_poison(QOS1, packet, str(error.value))
    assert (found is not None) == poison
    if found is not None:
        assert found.mid == 5
        assert found.qos == 1


def test_poison_topic_is_escaped_for_logs() -> None:
    assert read_poison(QOS1, publish(b"t/\xff", 3, None, b""), "why") == Poison(
        3, 1, "t/\\xff", "why"
    )
    assert read_poison(0x34, publish(b"t", 3, None, b""), "QoS 2") is None


def test_a_paho_without_the_publish_hook_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the hook paho would hand messages to an ``on_message`` the source does
    not set, and they would never be acknowledged: refuse to start instead."""
    import paho.mqtt.client as paho

    from eventing.errors import SourceError
    from sources.mqtt.paho import new_paho

    assert new_paho("c", v5=True, clean_session=None) is not None
    monkeypatch.delattr(paho.Client, "_handle_publish")
    with pytest.raises(SourceError) as error:
        new_paho("c", v5=True, clean_session=None)
    assert not error.value.retriable
