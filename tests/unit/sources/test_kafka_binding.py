"""Kafka record -> CloudEvent: binary, structured, wrapped; cross-checked against the
cloudevents SDK's own Kafka binding and the upstream conformance scenarios."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from eventing.errors import InvalidEventError
from sources.kafka.binding import KafkaRecord, decode_key, record_to_event

FEATURE = (
    Path(__file__).resolve().parents[4]
    / "shared"
    / "testdata"
    / "cloudevents-conformance"
    / "features"
    / "kafka-protocol-binding.feature"
)
PREFIX = "/apis/v1/namespaces/ns/kafkasources/src"


def record(
    value: bytes | None,
    headers: dict[str, bytes] | None = None,
    key: bytes | None = None,
    **kw: Any,
) -> KafkaRecord:
    return KafkaRecord(
        topic=kw.get("topic", "orders"),
        partition=kw.get("partition", 2),
        offset=kw.get("offset", 41),
        value=value,
        key=key,
        headers=tuple((headers or {}).items()),
        timestamp_ms=kw.get("timestamp_ms"),
    )


def test_plain_record_is_wrapped_like_knative_kafkasource() -> None:
    event = record_to_event(
        record(
            b"hello",
            {"Trace-Id": b"abc", "content-type": b"text/plain"},
            key=b"user-1",
            timestamp_ms=1_700_000_000_123,
        ),
        PREFIX,
    )
    assert event.attributes == {
        "specversion": "1.0",
        "id": "partition:2/offset:41",
        "source": f"{PREFIX}#orders",
        "type": "dev.knative.kafka.event",
        "subject": "partition:2#41",
        "time": "2023-11-14T22:13:20.123Z",
        "datacontenttype": "text/plain",
        "kafkaheadertraceid": "abc",
        "key": "user-1",
        "partitionkey": "user-1",
    }
    assert event.data == b"hello"


def test_wrapping_leaves_out_headers_that_cannot_be_attributes() -> None:
    event = record_to_event(record(b"x", {"a-very-long-header-name": b"v", "bin": b"\xff"}), PREFIX)
    assert not any(name.startswith("kafkaheader") for name in event.attributes)


@pytest.mark.parametrize(
    ("key", "key_type", "expected"),
    [
        (b"abc", "string", "abc"),
        (struct.pack(">i", -5), "int", "-5"),
        (struct.pack(">q", 2**40), "int", str(2**40)),
        (struct.pack(">d", 1.5), "float", "1.5"),
        (b"\x00\xff", "byte-array", "AP8="),
        (b"\xff", "string", None),
        (b"abc", "int", None),
    ],
)
def test_key_types(key: bytes, key_type: Any, expected: str | None) -> None:
    assert decode_key(key, key_type) == expected


def test_binary_mode_with_key_as_partitionkey() -> None:
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"1",
        "ce_type": b"t",
        "ce_source": b"/s",
        "CE_Ext": b"v",
        "content-type": b"application/json",
        "other": b"x",
    }
    event = record_to_event(record(b'{"a":1}', headers, key=b"k1"), PREFIX)
    assert event.attributes == {
        "specversion": "1.0",
        "id": "1",
        "type": "t",
        "source": "/s",
        "ext": "v",
        "datacontenttype": "application/json",
        "partitionkey": "k1",
    }


def test_null_value_is_an_event_without_data() -> None:
    headers = {"ce_specversion": b"1.0", "ce_id": b"1", "ce_type": b"t", "ce_source": b"/s"}
    assert record_to_event(record(None, headers), PREFIX).data is None


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ({"ce_specversion": b"1.0", "ce_type": b"t", "ce_source": b"/s"}, b""),  # no id
        ({"ce_specversion": b"1.0", "ce_id": b"\xff", "ce_type": b"t", "ce_source": b"/s"}, b""),
        ({"content-type": b"application/cloudevents+json"}, b"{not json"),
        ({"content-type": b"application/cloudevents+avro"}, b"..."),
        ({"content-type": b"application/cloudevents+json"}, None),
    ],
)
def test_invalid_cloudevents_are_rejected(headers: dict[str, bytes], value: bytes | None) -> None:
    with pytest.raises(InvalidEventError):
        record_to_event(record(value, headers), PREFIX)


def sdk_event(**extra: Any) -> CloudEvent:
    attributes = {
        "type": "com.example.t",
        "source": "/sdk",
        "id": "sdk-1",
        "datacontenttype": "application/json",
        **extra,
    }
    return CloudEvent(attributes=attributes, data={"message": "Hello"})


def as_record(message: sdk_kafka.KafkaMessage) -> KafkaRecord:
    key = message.key.encode() if isinstance(message.key, str) else message.key
    return record(message.value, dict(message.headers), key=key)


@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize("extra", [{}, {"partitionkey": "pk-9", "ext": "v"}])
def test_round_trip_against_the_sdk_binding(mode: str, extra: dict[str, str]) -> None:
    original = sdk_event(**extra)
    encode = sdk_kafka.to_binary_event if mode == "binary" else sdk_kafka.to_structured_event
    message = encode(original)
    ours = record_to_event(as_record(message), PREFIX)
    theirs = sdk_kafka.from_kafka(message, JSONFormat())
    expected = {
        k: v.isoformat().replace("+00:00", "Z") if k == "time" else v
        for k, v in theirs.get_attributes().items()
    }
    assert ours.attributes == expected
    assert json.loads(ours.data or b"") == theirs.get_data() == {"message": "Hello"}


def scenarios(text: str) -> list[dict[str, Any]]:
    """A small reader for the conformance feature file (Given/And/Then steps with doc
    strings and tables, Scenario Outline + Examples)."""
    found: list[dict[str, Any]] = []
    for block in re.split(r"\n\s*Scenario(?: Outline)?:", text)[1:]:
        docs = re.findall(r'"""\n(.*?)\n\s*"""', block, re.S)
        tables = re.findall(r"((?:\s*\|.*\|\n?)+)", block)
        parsed = [
            [
                [c.strip() for c in row.strip().strip("|").split("|")]
                for row in t.strip().splitlines()
            ]
            for t in tables
        ]
        rows = {"headers": parsed[0][1:], "attributes": parsed[1][1:]}
        examples = parsed[2][1:] if "Examples:" in block else [[]]
        names = parsed[2][0] if "Examples:" in block else []
        for example in examples:
            subst = {f"<{n}>": v for n, v in zip(names, example, strict=True)}

            def fill(value: str, subst: dict[str, str] = subst) -> str:
                for placeholder, real in subst.items():
                    value = value.replace(placeholder, real)
                return value

            found.append(
                {
                    "payload": docs[0].strip(),
                    "headers": {r[0]: fill(r[1]) for r in rows["headers"]},
                    "attributes": {r[0]: r[1] for r in rows["attributes"]},
                    "data": json.loads(docs[1]),
                }
            )
    return found


CASES = scenarios(FEATURE.read_text())


def test_feature_file_has_the_three_upstream_cases() -> None:
    assert len(CASES) == 3


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["headers"].get("content-type", ""))
def test_conformance_scenarios(case: dict[str, Any]) -> None:
    headers = {k: v.encode() for k, v in case["headers"].items()}
    event = record_to_event(record(case["payload"].encode(), headers), PREFIX)
    assert {k: str(v) for k, v in event.attributes.items()} == case["attributes"]
    assert json.loads(event.data or b"") == case["data"]


@pytest.mark.parametrize(
    ("headers", "key"),
    [({"note": b"a\x07b"}, None), ({}, b"user\x00one"), ({"content-type": b"text/\x1b"}, None)],
)
def test_wrapping_still_validates_what_comes_from_the_record(
    headers: dict[str, bytes], key: bytes | None
) -> None:
    """Wrapping validates only the record's headers and key (the rest it builds itself):
    a control character there is still refused."""
    with pytest.raises(InvalidEventError, match="control"):
        record_to_event(record(b"x", headers, key=key), PREFIX)


def test_a_topic_name_no_kafka_server_gives_is_validated_with_the_rest() -> None:
    odd = KafkaRecord(topic="a\tb", partition=0, offset=1, value=b"x")
    with pytest.raises(InvalidEventError, match="source"):
        record_to_event(odd, PREFIX)
