"""An event as an AMQP message and back, for the RabbitMQ class. Pure.

Attributes travel as message headers under their own names (``type``, ``source``,
...), as Knative's RabbitMQ broker does, because a headers exchange binds on header
names: a trigger's exact filters become its queue's binding with ``x-match: all``.
``datacontenttype`` is the ``content_type`` property, ``id`` also the
``message_id``; the body is the data bytes. Our own headers: ``eventing-types``
(the type of an ``int``/``bool`` extension) and ``eventing-nodata`` (no data, as
opposed to empty data). A message that is not a CloudEvent raises
:class:`InvalidEventError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from brokers.support import restore_types
from eventing.errors import InvalidEventError
from eventing.events import AttributeValue, Event, canonical, validate

TYPES: Final = "eventing-types"
NO_DATA: Final = "eventing-nodata"
MAX_HEADERS: Final = 256


def to_message(event: Event, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``aio_pika.Message``."""
    headers: dict[str, Any] = {}
    typed: list[str] = []
    content_type = None
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            content_type = str(value)
            continue
        if not isinstance(value, str):
            typed.append(f"{name}={'bool' if isinstance(value, bool) else 'int'}")
        headers[name] = canonical(value)
    if typed:
        headers[TYPES] = ",".join(typed)
    if event.data is None:
        headers[NO_DATA] = "1"
    if extra:
        headers.update(extra)
    return {
        "body": event.data or b"",
        "headers": headers,
        "content_type": content_type,
        "message_id": str(event.attributes.get("id", "")),
    }


def own_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Our ``eventing-*`` headers as text."""
    return {k: _text(v) for k, v in headers.items() if k.startswith("eventing-")}


def from_message(body: bytes, headers: Mapping[str, Any], content_type: str | None) -> Event:
    if len(headers) > MAX_HEADERS:
        raise InvalidEventError(f"{len(headers)} headers (at most {MAX_HEADERS})")
    attributes: dict[str, AttributeValue] = {}
    types = ""
    for name, value in headers.items():
        if name.startswith(("eventing-", "x-")):
            if name == TYPES:
                types = _text(value)
            continue
        attributes[name] = _text(value)
    if "specversion" not in attributes:
        raise InvalidEventError("not a CloudEvent: no specversion header")
    restore_types(attributes, types)
    if content_type:
        attributes["datacontenttype"] = content_type
    validate(attributes)
    data = None if _text(headers.get(NO_DATA, "")) == "1" else body
    return Event(attributes, data)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEventError("a header is not UTF-8") from None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
