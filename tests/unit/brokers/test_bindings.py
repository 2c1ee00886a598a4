"""Events survive the Kafka record and AMQP message bindings unchanged; a record or
message that is not a CloudEvent is refused with a reason."""

from __future__ import annotations

import pytest

from brokers.kafka import binding
from brokers.kafka.binding import TARGET, Known, from_record, header_map, read_record, to_record
from brokers.rabbitmq.binding import from_message, own_headers, to_message
from eventing.errors import InvalidEventError
from eventing.events import Event

EVENTS = [
    Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}, None),
    Event({"specversion": "1.0", "id": "2", "source": "/s", "type": "t"}, b""),
    Event(
        {
            "specversion": "1.0",
            "id": "3",
            "source": "/s",
            "type": "t",
            "datacontenttype": "application/json",
            "partitionkey": "k1",
            "count": 7,
            "flag": True,
            "subject": "ünïcode",
        },
        b'{"a": 1}',
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.id)
def test_kafka_round_trip(event: Event) -> None:
    key, value, headers = to_record(event, {TARGET: "ns/t"})
    assert key == (b"k1" if "partitionkey" in event.attributes else None)
    back = from_record(value, headers)
    assert back == event
    assert header_map(headers)[TARGET] == "ns/t"


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.id)
def test_a_replay_is_read_only_by_its_trigger(event: Event) -> None:
    _, value, headers = to_record(event, {TARGET: "ns/t"})
    assert read_record(value, headers, "ns/t") == event
    assert read_record(value, headers, "ns/other") is None
    _, value, headers = to_record(event)
    assert read_record(value, headers, "ns/other") == event  # not a replay: every trigger


def test_a_broken_replay_for_another_trigger_is_skipped_not_refused() -> None:
    """Another trigger's replay is that trigger's business, even when it does not decode
    (this trigger neither delivers nor dead-letters it); for its own trigger it is
    refused with the reason."""
    for headers in (
        [("ce_id", b"1"), (TARGET, b"ns/t")],
        [("ce_specversion", b"\xff"), (TARGET, b"ns/t")],
    ):
        assert read_record(b"x", headers, "ns/other") is None
        with pytest.raises(InvalidEventError):
            read_record(b"x", headers, "ns/t")


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.id)
def test_amqp_round_trip(event: Event) -> None:
    kwargs = to_message(event, {"eventing-x": "1"})
    back = from_message(kwargs["body"], kwargs["headers"], kwargs["content_type"])
    assert back == event
    assert kwargs["message_id"] == event.id
    assert own_headers(kwargs["headers"])["eventing-x"] == "1"


def test_kafka_structured_record_is_read() -> None:
    body = b'{"specversion":"1.0","id":"s","source":"/s","type":"t","data":{"x":1}}'
    event = from_record(body, [("content-type", b"application/cloudevents+json")])
    assert event.id == "s"


@pytest.mark.parametrize(
    ("value", "headers", "why"),
    [
        (b"plain text", [], "not a CloudEvent"),
        (b"x", [("ce_id", b"1")], "required attribute"),
        (b"x", [("ce_specversion", b"\xff")], "UTF-8"),
        (b"x", [("ce_specversion", None)], "UTF-8"),  # a null header value
        (b"{", [("content-type", b"application/cloudevents+json")], "JSON"),
    ],
)
def test_foreign_kafka_records_are_refused_with_a_reason(
    value: bytes, headers: list[tuple[str, bytes]], why: str
) -> None:
    with pytest.raises(InvalidEventError, match=why):
        from_record(value, headers)


def test_foreign_amqp_message_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="not a CloudEvent"):
        from_message(b"hello", {"foo": "bar"}, None)


GOOD = [("ce_specversion", b"1.0"), ("ce_source", b"/s"), ("ce_type", b"t"), ("ce_x", b"y")]


def test_headers_seen_before_are_read_the_same_and_new_values_still_checked() -> None:
    for i in range(3):  # the second and third read the kept headers
        event = read_record(b"d", [*GOOD, ("ce_id", b"%d" % i)], None)
        assert event is not None
        assert event.attributes == {"specversion": "1.0", "source": "/s", "type": "t",
                                    "x": "y", "id": str(i)}  # fmt: skip
    with pytest.raises(InvalidEventError, match="control"):
        read_record(b"d", [*GOOD, ("ce_id", b"1"), ("ce_z", b"a\x01")], None)
    with pytest.raises(InvalidEventError, match="time"):
        read_record(b"d", [*GOOD, ("ce_id", b"1"), ("ce_time", b"yesterday")], None)
    with pytest.raises(InvalidEventError, match="required attribute 'id'"):
        read_record(b"d", GOOD, None)  # every header kept, the id missing
    with pytest.raises(InvalidEventError, match="specversion"):
        read_record(b"d", [*GOOD[1:], ("ce_id", b"1"), ("ce_specversion", b"9")], None)
    assert ("ce_x", b"y") in binding._READ
    assert not any(h[0] == "ce_id" for h in binding._READ)  # per event: never kept
    assert ("ce_z", b"a\x01") not in binding._READ  # refused: never kept


def test_typed_extensions_are_checked_whole_and_not_kept() -> None:
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "n": 2**40}, b"")
    _, value, headers = to_record(event)
    with pytest.raises(InvalidEventError, match="32-bit"):
        from_record(value, headers)


def test_written_headers_are_kept_by_value_and_type() -> None:
    one = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "f": True}, b"")
    other = Event({"specversion": "1.0", "id": "2", "source": "/s", "type": "t", "f": 1}, b"")
    text = Event({"specversion": "1.0", "id": "3", "source": "/s", "type": "t", "f": "1"}, b"")
    for event in (one, other, text, one, other, text):
        _, value, headers = to_record(event)
        assert from_record(value, headers) == event


def test_known_headers_are_bounded() -> None:
    known: Known[str, int] = Known(limit=3)
    for i in range(7):
        known.keep(str(i), i)
        assert len(known) <= 3
    assert known == {"6": 6}


def test_a_content_type_is_kept_only_once_it_passed() -> None:
    for _ in range(2):
        event = read_record(b"{}", [*GOOD, ("ce_id", b"1"), ("content-type", b"text/x")], None)
        assert event is not None
        assert event.attributes["datacontenttype"] == "text/x"
        with pytest.raises(InvalidEventError, match="control"):
            read_record(b"{}", [*GOOD, ("ce_id", b"1"), ("content-type", b"text/\x01")], None)
    assert "text/x" in binding._CONTENT_TYPES
    assert "text/\x01" not in binding._CONTENT_TYPES
