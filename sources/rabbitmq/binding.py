"""AMQP 0-9-1 message -> CloudEvent: Knative's RabbitMQ binding (as implemented by
``cloudevents.core.bindings.rabbitmq``), plus RabbitmqSource's wrapping of plain
messages. Pure functions.

Mode detection: a ``content_type`` property starting with ``application/cloudevents``
is structured mode; otherwise a ``ce-specversion`` header (case-insensitive) means
binary mode: ``ce-<name>`` headers are attributes and the ``content_type`` property is
``datacontenttype`` (a ``content-type`` header is accepted when the property is
absent: Knative's RabbitMQ broker writes one). Header values keep their AMQP types
for extensions (boolean, integer); context attributes become strings. Otherwise the
message is wrapped like Knative's RabbitmqSource does:

=============== ===================================================================
``type``        ``dev.knative.rabbitmq.event``
``source``      ``/apis/v1/namespaces/<ns>/rabbitmqsources/<name>#<queue>``
``id``          the ``message_id`` property; without one, ``amqp-<sha256 prefix>`` of
                the queue, exchange, routing key, properties, headers and body, so a
                redelivery keeps its id. (Knative mints a random UUID, which defeats
                deduplication.) Two *different* messages with identical content and
                no message_id or timestamp get the same id: publishers that send
                such messages should set ``message_id``. Such hashed ids are
                therefore not deduplicated by the broker unless the source's
                ``eventing.local/dedup`` annotation is ``"true"`` (``event.dedup``).
``subject``     the id (as Knative does)
``time``        the ``timestamp`` property, when set
``datacontenttype`` the ``content_type`` property, when set
=============== ===================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from eventing.events import AttributeValue, Event
from sources.support.binding import (
    decode_structured,
    finish,
    header_value,
    is_structured,
    rfc3339,
    stable_id,
)

CE_PREFIX: Final = "ce-"
EVENT_TYPE: Final = "dev.knative.rabbitmq.event"
#: Headers RabbitMQ itself adds or changes on redelivery; not part of the identity.
_VOLATILE_HEADERS: Final = frozenset(
    {
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
    }
)


@dataclass(frozen=True, slots=True)
class AmqpMessage:
    """The parts of a delivered message the mapping reads (client-library independent)."""

    body: bytes
    headers: Mapping[str, object] = field(default_factory=dict)
    content_type: str | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    correlation_id: str | None = None
    app_id: str | None = None
    type: str | None = None
    exchange: str = ""
    routing_key: str = ""


def message_to_event(message: AmqpMessage, source_prefix: str, queue: str) -> Event:
    """Decode a message as a CloudEvent (binary or structured) or wrap it.

    ``source_prefix`` is ``/apis/v1/namespaces/<ns>/rabbitmqsources/<name>``. Raises
    :class:`eventing.errors.InvalidEventError` for a message that claims to be a
    CloudEvent but is not a valid one.
    """
    if is_structured(message.content_type):
        return decode_structured(message.body, message.content_type)
    if any(str(name).lower() == CE_PREFIX + "specversion" for name in message.headers):
        return decode_binary(message)
    return wrap(message, source_prefix, queue)


def decode_binary(message: AmqpMessage) -> Event:
    attributes: dict[str, AttributeValue] = {}
    header_content_type: AttributeValue | None = None
    for raw_name, raw_value in message.headers.items():
        name = str(raw_name).lower()
        if name.startswith(CE_PREFIX):
            attr = name[len(CE_PREFIX) :]
            attributes[attr] = header_value(attr, raw_value)
        elif name == "content-type":
            header_content_type = header_value("datacontenttype", raw_value)
    if message.content_type:
        attributes["datacontenttype"] = message.content_type
    elif header_content_type:
        attributes["datacontenttype"] = header_content_type
    return finish(attributes, message.body)


def wrap(message: AmqpMessage, source_prefix: str, queue: str) -> Event:
    """Knative RabbitmqSource's CloudEvent for a plain message (see the module docstring)."""
    event_id = message.message_id or identity(message, queue)
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"{source_prefix}#{queue}",
        "type": EVENT_TYPE,
        "subject": event_id,
    }
    if message.timestamp is not None:
        attributes["time"] = rfc3339(message.timestamp)
    if message.content_type:
        attributes["datacontenttype"] = message.content_type
    event = finish(attributes, message.body)
    if not message.message_id:
        # A content hash is stable across redeliveries, but two different messages
        # with the same content share it: not deduplicated unless the source says so.
        event.dedup = ""
    return event


def identity(message: AmqpMessage, queue: str) -> str:
    """The stable id of a message without ``message_id`` (see the module docstring)."""
    headers = sorted(
        (str(k), repr(v)) for k, v in message.headers.items() if str(k) not in _VOLATILE_HEADERS
    )
    return stable_id(
        "amqp",
        [
            queue,
            message.exchange,
            message.routing_key,
            message.content_type,
            message.correlation_id,
            message.app_id,
            message.type,
            None if message.timestamp is None else rfc3339(message.timestamp),
            repr(headers),
            message.body,
        ],
    )
