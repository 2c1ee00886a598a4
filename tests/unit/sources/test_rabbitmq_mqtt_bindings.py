"""AMQP and MQTT messages -> CloudEvents: binary, structured, wrapped; the RabbitMQ
side cross-checked against the cloudevents SDK's own RabbitMQ binding."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import rabbitmq as sdk_rabbitmq
from cloudevents.core.v1.event import CloudEvent

from eventing.errors import InvalidEventError
from sources.mqtt.binding import MqttMessage
from sources.mqtt.binding import message_to_event as mqtt_event
from sources.rabbitmq.binding import AmqpMessage, identity
from sources.rabbitmq.binding import message_to_event as amqp_event

RMQ = "/apis/v1/namespaces/ns/rabbitmqsources/src"
MQTT = "/apis/v1/namespaces/ns/mqttsources/src"


def test_plain_amqp_message_is_wrapped_like_knative_rabbitmqsource() -> None:
    message = AmqpMessage(
        b"hi", message_id="m-1", content_type="text/plain", timestamp=datetime(2024, 5, 1, 12, 0, 0)
    )
    event = amqp_event(message, RMQ, "jobs")
    assert event.attributes == {
        "specversion": "1.0",
        "id": "m-1",
        "source": f"{RMQ}#jobs",
        "type": "dev.knative.rabbitmq.event",
        "subject": "m-1",
        "time": "2024-05-01T12:00:00.000Z",
        "datacontenttype": "text/plain",
    }


def test_amqp_id_without_message_id_is_stable_across_redelivery() -> None:
    first = AmqpMessage(b"same", headers={"h": 1}, routing_key="r")
    again = AmqpMessage(b"same", headers={"h": 1, "x-delivery-count": 2}, routing_key="r")
    other = AmqpMessage(b"different", headers={"h": 1}, routing_key="r")
    assert identity(first, "q") == identity(again, "q") != identity(other, "q")
    assert amqp_event(first, RMQ, "q").id.startswith("amqp-")


def test_amqp_binary_keeps_typed_extensions() -> None:
    headers: dict[str, Any] = {
        "ce-specversion": "1.0",
        "ce-id": b"1",
        "ce-type": "t",
        "ce-source": "/s",
        "ce-flag": True,
        "ce-n": 3,
        "ce-time": datetime(2024, 1, 1, tzinfo=UTC),
        "plain": "ignored",
    }
    event = amqp_event(AmqpMessage(b"d", headers=headers, content_type="text/plain"), RMQ, "q")
    assert event.attributes == {
        "specversion": "1.0",
        "id": "1",
        "type": "t",
        "source": "/s",
        "flag": True,
        "n": 3,
        "time": "2024-01-01T00:00:00.000Z",
        "datacontenttype": "text/plain",
    }


def test_amqp_binary_accepts_a_content_type_header() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-type": "t",
        "ce-source": "/s",
        "content-type": "application/json",
    }
    assert amqp_event(AmqpMessage(b"{}", headers=headers), RMQ, "q").datacontenttype == (
        "application/json"
    )


@pytest.mark.parametrize(
    "message",
    [
        AmqpMessage(b"", headers={"ce-specversion": "1.0", "ce-type": "t", "ce-source": "/s"}),
        AmqpMessage(
            b"",
            headers={
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-type": "t",
                "ce-source": "/s",
                "ce-x": [1],
            },
        ),
        AmqpMessage(b"nope", content_type="application/cloudevents+json"),
    ],
)
def test_invalid_amqp_cloudevents_are_rejected(message: AmqpMessage) -> None:
    with pytest.raises(InvalidEventError):
        amqp_event(message, RMQ, "q")


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_amqp_round_trip_against_the_sdk_binding(mode: str) -> None:
    original = CloudEvent(
        attributes={
            "type": "t",
            "source": "/sdk",
            "id": "x-1",
            "ext": "v",
            "datacontenttype": "application/json",
        },
        data={"k": [1, 2]},
    )
    encode = sdk_rabbitmq.to_binary_event if mode == "binary" else sdk_rabbitmq.to_structured_event
    wire = encode(original)
    ours = amqp_event(
        AmqpMessage(wire.body, headers=dict(wire.headers), content_type=wire.content_type), RMQ, "q"
    )
    theirs = sdk_rabbitmq.from_rabbitmq_event(wire)
    expected = {
        k: v.isoformat().replace("+00:00", "Z") if k == "time" else v
        for k, v in theirs.get_attributes().items()
    }
    assert ours.attributes == expected
    assert json.loads(ours.data or b"") == theirs.get_data()


def test_mqtt_plain_payload_is_wrapped_with_topic_as_subject() -> None:
    message = MqttMessage("site/dock-7/temp", b"21.5", qos=1, mid=17)
    event = mqtt_event(message, MQTT, "client-a")
    assert event.attributes["subject"] == "site/dock-7/temp"
    assert event.attributes["type"] == "local.eventing.mqtt.event"
    assert event.attributes["source"] == MQTT
    assert event.id == mqtt_event(message, MQTT, "client-a").id  # redelivery: same id
    assert (
        event.id
        != mqtt_event(MqttMessage("site/dock-7/temp", b"21.5", mid=18), MQTT, "client-a").id
    )  # a repeated reading: another event


def test_mqtt_qos0_ids_are_unique() -> None:
    message = MqttMessage("t", b"x", qos=0)
    assert mqtt_event(message, MQTT, "c").id != mqtt_event(message, MQTT, "c").id


def test_mqtt5_binary_mode_uses_user_properties_without_prefix() -> None:
    props = (
        ("specversion", "1.0"),
        ("id", "1"),
        ("type", "t"),
        ("source", "/s"),
        ("Not-An-Attribute", "x"),
        ("region", "eu"),
    )
    event = mqtt_event(
        MqttMessage("t", b"{}", content_type="application/json", user_properties=props), MQTT, "c"
    )
    assert event.attributes == {
        "specversion": "1.0",
        "id": "1",
        "type": "t",
        "source": "/s",
        "region": "eu",
        "datacontenttype": "application/json",
    }


@pytest.mark.parametrize("content_type", ["application/cloudevents+json", None])
def test_mqtt_structured_mode_with_and_without_content_type(content_type: str | None) -> None:
    body = json.dumps(
        {"specversion": "1.0", "id": "s", "type": "t", "source": "/s", "data": {"v": 1}}
    ).encode()
    event = mqtt_event(MqttMessage("t", body, content_type=content_type), MQTT, "c")
    assert event.id == "s"
    assert event.data == b'{"v":1}'


def test_device_json_mentioning_specversion_is_wrapped_not_rejected() -> None:
    body = b'{"specversion": 3, "temp": 20}'
    assert mqtt_event(MqttMessage("t", body), MQTT, "c").attributes["subject"] == "t"


def test_invalid_mqtt_cloudevent_is_rejected() -> None:
    with pytest.raises(InvalidEventError):
        mqtt_event(MqttMessage("t", b"{}", user_properties=(("specversion", "1.0"),)), MQTT, "c")
