"""The CloudEvents HTTP binding end to end: ingress -> broker -> a real subscriber.

Covers the easy-to-get-wrong list (cloudevents-conformance.md §2.8): percent-encoding
of ``ce-`` values, ``Content-Type`` <-> ``datacontenttype``, binary and structured
delivery, a differential check against the cloudevents SDK (encode with the SDK,
post, decode what was delivered with the SDK), and batched ingress.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v03.event import CloudEvent as SdkEventV03
from cloudevents.core.v1.event import CloudEvent as SdkEventV1

from eventing.app.runtime import Running
from tests.conftest import SystemFactory
from tests.support.mesh import (
    assert_nothing_stored,
    broker_doc,
    broker_url,
    ce_headers,
    manifests,
    post,
    settled,
    trigger_doc,
)
from tests.support.subscriber import Received, RecordingSubscriber
from tests.support.wire import BROKER_ADDED, header, read_delivery

SPEC_EXAMPLE = "Euro € 😀"
SPEC_EXAMPLE_ENCODED = "Euro%20%E2%82%AC%20%F0%9F%98%80"
BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def _setup(url: str) -> str:
    return manifests(
        broker_doc(),
        trigger_doc("binary", f"{url}/binary"),
        trigger_doc("forced-binary", f"{url}/forced-binary", delivery={"format": "binary"}),
        trigger_doc("structured", f"{url}/structured", delivery={"format": "json"}),
    )


async def _start(system: SystemFactory, subscriber: RecordingSubscriber) -> Running:
    return await system(_setup(subscriber.url))


async def _deliveries(subscriber: RecordingSubscriber, n: int = 1) -> dict[str, Received]:
    """The ``n``-th request on each of the three paths (one per trigger)."""
    for path in ("/binary", "/forced-binary", "/structured"):
        await subscriber.wait_for(lambda rs, p=path: len([r for r in rs if r.path == p]) >= n)  # type: ignore[misc]
    return {
        path: [r for r in subscriber.received if r.path == path][n - 1]
        for path in ("/binary", "/forced-binary", "/structured")
    }


# -- percent-encoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(SPEC_EXAMPLE_ENCODED, id="spec-example"),
        pytest.param("Euro%20%e2%82%ac%20%f0%9f%98%80", id="lower-case-hex"),
        pytest.param(f'"{SPEC_EXAMPLE_ENCODED}"', id="quoted-string"),
        pytest.param("%45uro%20%E2%82%AC%20%F0%9F%98%80", id="unnecessary-encoding"),
    ],
)
async def test_percent_encoded_value_is_decoded_and_reencoded(
    sent: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    async with aiohttp.ClientSession() as http:
        status, answer = await post(
            http, broker_url(running), ce_headers("p1", myext=sent, subject=sent)
        )
    assert status == 202, answer
    got = await _deliveries(subscriber)
    for path in ("/binary", "/forced-binary"):
        # On the wire: the canonical encoding (upper-case hex, only what must be).
        assert header(got[path], "ce-myext") == SPEC_EXAMPLE_ENCODED
        assert header(got[path], "ce-subject") == SPEC_EXAMPLE_ENCODED
    for received in got.values():
        event = read_delivery(received)
        assert event.attributes["myext"] == SPEC_EXAMPLE
        assert event.attributes["subject"] == SPEC_EXAMPLE
    structured = json.loads(got["/structured"].body)
    assert structured["myext"] == SPEC_EXAMPLE


@pytest.mark.parametrize(
    ("sent", "decoded", "on_wire"),
    [
        pytest.param('"say \\"hi\\""', 'say "hi"', "say%20%22hi%22", id="quoted-escapes"),
        pytest.param("100%25", "100%", "100%25", id="percent-sign"),
        pytest.param("a%2Fb", "a/b", "a/b", id="safe-char-encoded"),
    ],
)
async def test_header_value_forms(
    sent: str, decoded: str, on_wire: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), ce_headers("p2", myext=sent))
    assert status == 202, answer
    got = await _deliveries(subscriber)
    assert header(got["/binary"], "ce-myext") == on_wire
    assert read_delivery(got["/binary"]).attributes["myext"] == decoded


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("%C0%A0", id="overlong-C0A0"),
        pytest.param("a%E2%82", id="truncated-sequence"),
        pytest.param("%ED%A0%80", id="encoded-surrogate"),
        pytest.param("%FF", id="invalid-byte"),
        pytest.param("%ZZ", id="bad-hex"),
        pytest.param("abc%4", id="short-escape"),
        pytest.param("%00", id="nul-control-char"),
        pytest.param('"unterminated\\"', id="dangling-quote-escape"),
    ],
)
async def test_invalid_header_encoding_is_rejected(
    sent: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), ce_headers("bad", myext=sent))
    assert status == 400, answer
    assert "myext" in json.loads(answer)["error"]
    assert_nothing_stored(running)


# -- Content-Type <-> datacontenttype ------------------------------------------------------


async def test_content_type_is_datacontenttype_both_ways(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    content_type = "application/json; charset=utf-8"
    async with aiohttp.ClientSession() as http:
        status, _ = await post(
            http,
            broker_url(running),
            {**ce_headers("ct1"), "Content-Type": content_type},
            b'{"a": 1}',
        )
        assert status == 202
    got = await _deliveries(subscriber)
    for path in ("/binary", "/forced-binary"):
        assert header(got[path], "Content-Type") == content_type
        assert header(got[path], "ce-datacontenttype") is None
        assert got[path].body == b'{"a": 1}'
    structured = json.loads(got["/structured"].body)
    assert structured["datacontenttype"] == content_type
    assert structured["data"] == {"a": 1}


async def test_structured_datacontenttype_becomes_content_type(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    body = {
        "specversion": "1.0",
        "id": "ct2",
        "source": "/s",
        "type": "t",
        "datacontenttype": "text/csv",
        "data": "a,b\n1,2\n",
    }
    async with aiohttp.ClientSession() as http:
        status, _ = await post(
            http,
            broker_url(running),
            {"Content-Type": "application/cloudevents+json"},
            json.dumps(body).encode(),
        )
        assert status == 202
    got = await _deliveries(subscriber)
    assert header(got["/binary"], "Content-Type") == "text/csv"
    assert header(got["/binary"], "ce-datacontenttype") is None
    assert got["/binary"].body == b"a,b\n1,2\n"


@pytest.mark.parametrize("body", [b"", b"\x00\x01raw"], ids=["no-data", "opaque-data"])
async def test_no_content_type_when_the_event_has_none(
    body: bytes, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), ce_headers("ct3"), body)
        assert status == 202, answer
    got = await _deliveries(subscriber)
    for path in ("/binary", "/forced-binary"):
        assert header(got[path], "Content-Type") is None, got[path].headers
        assert header(got[path], "ce-datacontenttype") is None
        assert got[path].body == body
    structured = json.loads(got["/structured"].body)
    assert "datacontenttype" not in structured
    if body:
        # No content type: data_base64, never a `data` member a reader takes as JSON.
        assert "data" not in structured
        assert base64.b64decode(structured["data_base64"]) == body
    else:
        assert "data" not in structured
        assert "data_base64" not in structured


async def test_conflicting_ce_datacontenttype_is_rejected(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    headers = {
        **ce_headers("ct4", datacontenttype="text/plain"),
        "Content-Type": "application/json",
    }
    async with aiohttp.ClientSession() as http:
        status, _ = await post(http, broker_url(running), headers, b"{}")
    assert status == 400
    assert_nothing_stored(running)


async def test_ce_datacontenttype_alone_is_delivered_as_content_type(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """Lenient input (a sender that wrote the attribute as a header): accepted, and the
    delivery is correct (Content-Type, never ``ce-datacontenttype``)."""
    running = await _start(system, subscriber)
    async with aiohttp.ClientSession() as http:
        status, _ = await post(
            http, broker_url(running), ce_headers("ct5", datacontenttype="text/plain"), b"hi"
        )
    assert status == 202
    got = await _deliveries(subscriber)
    assert header(got["/binary"], "Content-Type") == "text/plain"
    assert header(got["/binary"], "ce-datacontenttype") is None


# -- binary and structured delivery --------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "data", "member", "value"),
    [
        ("application/json", b'{"k": [1, 2]}', "data", {"k": [1, 2]}),
        ("application/vnd.api+json", b'"a string"', "data", "a string"),
        ("text/plain; charset=utf-8", "héllo\n".encode(), "data", "héllo\n"),
        ("application/xml", b"<a/>", "data", "<a/>"),
        (
            "application/octet-stream",
            b"\xff\x00\xfe",
            "data_base64",
            base64.b64encode(b"\xff\x00\xfe").decode(),
        ),
        ("application/json", b"NaN", "data_base64", base64.b64encode(b"NaN").decode()),
        (
            "text/plain",
            b"\xff not utf-8",
            "data_base64",
            base64.b64encode(b"\xff not utf-8").decode(),
        ),
    ],
)
async def test_structured_delivery_on_request(
    content_type: str,
    data: bytes,
    member: str,
    value: Any,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
) -> None:
    running = await _start(system, subscriber)
    async with aiohttp.ClientSession() as http:
        status, _ = await post(
            http,
            broker_url(running),
            {**ce_headers("s1", myext="x y"), "Content-Type": content_type},
            data,
        )
        assert status == 202
    got = await _deliveries(subscriber)
    structured = got["/structured"]
    assert header(structured, "Content-Type") == "application/cloudevents+json"
    assert not [k for k in structured.headers if k.lower().startswith("ce-")]
    obj = json.loads(structured.body)
    assert obj[member] == value
    assert {"data", "data_base64"} - {member} & obj.keys() == set()
    assert obj["myext"] == "x y"
    assert obj["datacontenttype"] == content_type
    for path in ("/binary", "/forced-binary"):
        assert header(got[path], "Content-Type") == content_type
        assert got[path].body == data
        assert read_delivery(got[path]).mode == "binary"
    assert read_delivery(structured).data == (
        data
        if member == "data_base64" or "json" not in content_type
        else json.dumps(value, separators=(",", ":")).encode()
    )


async def test_v03_stays_v03_in_structured_delivery(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """0.3 has no ``data_base64``: binary data is ``datacontentencoding: base64``."""
    running = await _start(system, subscriber)
    raw = b"\x00\x9f\x92\x96"
    async with aiohttp.ClientSession() as http:
        status, _ = await post(
            http,
            broker_url(running),
            {
                **ce_headers("v3", specversion="0.3", schemaurl="http://x/s"),
                "Content-Type": "application/octet-stream",
            },
            raw,
        )
        assert status == 202
    got = await _deliveries(subscriber)
    obj = json.loads(got["/structured"].body)
    assert obj["specversion"] == "0.3"
    assert obj["schemaurl"] == "http://x/s"
    assert "data_base64" not in obj
    assert obj["datacontentencoding"] == "base64"
    assert base64.b64decode(obj["data"]) == raw
    assert header(got["/binary"], "ce-specversion") == "0.3"
    assert got["/binary"].body == raw
    sdk = sdk_http.from_http(_message(got["/structured"]), JSONFormat())
    assert sdk.get_specversion() == "0.3"
    assert sdk.get_data() == raw


# -- differential check against the cloudevents SDK ------------------------------------


def _sdk_events() -> list[tuple[str, BaseCloudEvent]]:
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    return [
        (
            "json",
            SdkEventV1(
                {
                    "id": "d1",
                    "source": "/sdk",
                    "type": "sdk.json",
                    "time": when,
                    "datacontenttype": "application/json",
                    "subject": "sub ject",
                    "dataschema": "http://x/schema",
                    "myext": SPEC_EXAMPLE,
                },
                {"k": "v", "n": [1, 2.5, None, True]},
            ),
        ),
        (
            "text",
            SdkEventV1(
                {
                    "id": "d2",
                    "source": "urn:sdk",
                    "type": "sdk.text",
                    "datacontenttype": "text/plain; charset=utf-8",
                    "quotes": 'a "quoted" 100% value',
                    "time": when,
                },
                "plain text ✓",
            ),
        ),
        (
            "bytes",
            SdkEventV1(
                {
                    "id": "d3",
                    "source": "/sdk",
                    "type": "sdk.bytes",
                    "datacontenttype": "application/octet-stream",
                    "time": when,
                },
                b"\x00\xff\xfe\x80",
            ),
        ),
        ("no-data", SdkEventV1({"id": "d4", "source": "/sdk", "type": "sdk.empty", "time": when})),
        (
            "v03",
            SdkEventV03(
                {
                    "id": "d5",
                    "source": "/sdk",
                    "type": "sdk.v03",
                    "specversion": "0.3",
                    "time": when,
                    "datacontenttype": "application/json",
                    "schemaurl": "http://x/schema",
                },
                {"v": 3},
            ),
        ),
    ]


SDK_EVENTS = _sdk_events()


def _message(received: Received) -> sdk_http.HTTPMessage:
    return sdk_http.HTTPMessage(headers=dict(received.headers), body=received.body)


def _attributes(event: BaseCloudEvent) -> dict[str, Any]:
    return {k: v for k, v in event.get_attributes().items() if k not in BROKER_ADDED}


@pytest.mark.parametrize("encode", ["to_binary", "to_structured"])
@pytest.mark.parametrize(("name", "event"), SDK_EVENTS, ids=[n for n, _ in SDK_EVENTS])
async def test_sdk_encoded_event_is_delivered_sdk_decodable(
    name: str,
    event: BaseCloudEvent,
    encode: str,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
) -> None:
    running = await _start(system, subscriber)
    if encode == "to_binary":
        message = sdk_http.to_binary(event, JSONFormat())
    else:
        message = sdk_http.to_structured(event, JSONFormat())
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), message.headers, message.body)
    assert status == 202, answer
    got = await _deliveries(subscriber)
    for path, received in got.items():
        decoded = sdk_http.from_http(_message(received), JSONFormat())
        assert _attributes(decoded) == event.get_attributes(), path
        assert decoded.get_data() == event.get_data(), path
        assert decoded.get_attributes().keys() >= BROKER_ADDED


# -- batched ingress ------------------------------------------------------------------------


def _entry(id_: str, **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": id_, "source": "/batch", "type": "batch.t", **extra}


async def _post_batch(
    running: Running, entries: Any, content_type: str = BATCH["Content-Type"]
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        status, answer = await post(
            http, broker_url(running), {"Content-Type": content_type}, json.dumps(entries).encode()
        )
    return status, json.loads(answer)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents-batch+json",
        "Application/CloudEvents-Batch+JSON; charset=utf-8",
    ],
)
async def test_batch_is_accepted_per_entry(
    content_type: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    entries = [
        _entry("b1", data={"n": 1}),
        _entry("b2", datacontenttype="text/plain", data="two"),
        _entry("b3", ext="x"),
    ]
    status, answer = await _post_batch(running, entries, content_type)
    assert status == 202, answer
    assert answer["accepted"] == 3
    assert answer["rejected"] == 0
    assert [(r["index"], r["id"], r["status"]) for r in answer["results"]] == [
        (0, "b1", 202),
        (1, "b2", 202),
        (2, "b3", 202),
    ]
    await subscriber.wait_count(3, "/binary")
    delivered = {
        e.attributes["id"]: e
        for e in (read_delivery(r) for r in subscriber.received if r.path == "/binary")
    }
    assert set(delivered) == {"b1", "b2", "b3"}
    assert delivered["b1"].data == b'{"n":1}'
    assert delivered["b2"].data == b"two"
    assert delivered["b3"].attributes["ext"] == "x"
    assert delivered["b3"].data is None


async def test_batch_mixed_valid_and_invalid_is_207(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    entries = [
        _entry("ok1"),
        {"specversion": "1.0", "id": "no-source", "type": "t"},
        _entry("bad-int", big=2**31),
        "not an object",
        _entry("ok2"),
    ]
    status, answer = await _post_batch(running, entries)
    assert status == 207, answer
    assert answer["accepted"] == 2
    assert answer["rejected"] == 3
    statuses = {r["index"]: r["status"] for r in answer["results"]}
    assert statuses == {0: 202, 1: 400, 2: 400, 3: 400, 4: 202}
    assert all(r.get("error") for r in answer["results"] if r["status"] == 400)
    await subscriber.wait_count(2, "/binary")
    await settled(running)
    assert sorted(subscriber.ids("/binary")) == ["ok1", "ok2"]


async def test_batch_all_invalid_is_400_and_nothing_stored(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    status, answer = await _post_batch(running, [{"id": "x"}, _entry("y", Upper="no")])
    assert status == 400
    assert [r["status"] for r in answer["results"]] == [400, 400]
    assert_nothing_stored(running)


async def test_batch_with_mixed_specversions_rejects_the_odd_entries(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """All events of a batch must share specversion (spec); entries that differ from
    the first accepted one are refused, per entry, and never stored."""
    running = await _start(system, subscriber)
    entries = [_entry("v1a"), _entry("v03", specversion="0.3"), _entry("v1b")]
    status, answer = await _post_batch(running, entries)
    assert status == 207, answer
    assert [r["status"] for r in answer["results"]] == [202, 400, 202]
    assert "specversion" in answer["results"][1]["error"]
    await subscriber.wait_count(2, "/binary")
    await settled(running)
    assert sorted(subscriber.ids("/binary")) == ["v1a", "v1b"]


async def test_empty_batch_is_ok(system: SystemFactory, subscriber: RecordingSubscriber) -> None:
    running = await _start(system, subscriber)
    status, answer = await _post_batch(running, [])
    assert status == 202
    assert answer == {"accepted": 0, "rejected": 0, "results": []}
    assert_nothing_stored(running)


@pytest.mark.parametrize(
    "body",
    [b'{"specversion": "1.0"}', b"[1, 2", b""],
    ids=["object-not-array", "truncated", "empty-body"],
)
async def test_batch_that_is_not_an_array_is_400(
    body: bytes, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await _start(system, subscriber)
    async with aiohttp.ClientSession() as http:
        status, _ = await post(http, broker_url(running), BATCH, body)
    assert status == 400
    assert_nothing_stored(running)
