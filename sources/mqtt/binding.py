"""MQTT PUBLISH -> CloudEvent: the CloudEvents MQTT binding (MQTT 5 binary and
structured, MQTT 3.1.1 structured) and the wrapping of plain device payloads. Pure.

Mode detection:

- MQTT 5 with a Content Type property starting with ``application/cloudevents``:
  structured mode.
- MQTT 5 with a ``specversion`` User Property: binary mode. User Properties named
  exactly as attributes (no prefix) carry them; the Content Type property is
  ``datacontenttype`` (a ``datacontenttype`` User Property is accepted when the
  property is absent: the spec's own example sends one). Other User Properties whose
  names are not valid attribute names are ignored.
- Otherwise (MQTT 3.1.1, or MQTT 5 from a device that sets no Content Type): a payload
  that is a JSON object with ``specversion`` is read as structured mode, since 3.1.1
  can only carry CloudEvents that way; anything else is a plain device payload.

Plain payloads are wrapped:

=============== ===================================================================
``type``        ``local.eventing.mqtt.event``
``source``      ``/apis/v1/namespaces/<ns>/mqttsources/<name>``
``subject``     the topic the message was published to (``sensors/dock-7/temp``)
``id``          QoS 1: ``mqtt-<sha256 prefix>`` of client id, topic, packet id and
                payload. A redelivery after a reconnect carries the same packet id,
                so it keeps its id; packet ids are reused only after 65535 others, so
                a repeated identical reading is a different event. QoS 0 messages are
                never redelivered and get a random UUID.
``datacontenttype`` the MQTT 5 Content Type property, when set
=============== ===================================================================
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from eventing.errors import InvalidEventError
from eventing.events import AttributeValue, Event, is_valid_name
from sources.support.binding import (
    decode_structured,
    finish,
    is_structured,
    looks_like_structured_json,
    stable_id,
)

EVENT_TYPE: Final = "local.eventing.mqtt.event"


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """The parts of a received PUBLISH the mapping reads (client-library independent)."""

    topic: str
    payload: bytes
    qos: int = 1
    mid: int = 0
    content_type: str | None = None
    user_properties: Sequence[tuple[str, str]] = field(default_factory=tuple)


def message_to_event(message: MqttMessage, source: str, client_id: str) -> Event:
    """Decode a PUBLISH as a CloudEvent or wrap its payload (see the module docstring).

    Raises :class:`InvalidEventError` for a message that claims to be a CloudEvent
    but is not a valid one.
    """
    if is_structured(message.content_type):
        return decode_structured(message.payload, message.content_type)
    if any(name == "specversion" for name, _ in message.user_properties):
        return decode_binary(message)
    if message.content_type is None and looks_like_structured_json(message.payload):
        try:
            return decode_structured(message.payload, None)
        except InvalidEventError:
            pass  # a device's own JSON that happens to mention specversion
    return wrap(message, source, client_id)


def decode_binary(message: MqttMessage) -> Event:
    attributes: dict[str, AttributeValue] = {}
    for name, value in message.user_properties:
        if is_valid_name(name):
            attributes[name] = value
    if message.content_type:
        attributes["datacontenttype"] = message.content_type
    return finish(attributes, message.payload)


def wrap(message: MqttMessage, source: str, client_id: str) -> Event:
    if message.qos == 0:
        event_id = str(uuid.uuid4())
    else:
        event_id = stable_id("mqtt", [client_id, message.topic, str(message.mid), message.payload])
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": message.topic,
    }
    if message.content_type:
        attributes["datacontenttype"] = message.content_type
    return finish(attributes, message.payload)
