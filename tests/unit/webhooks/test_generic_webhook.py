"""The generic WebhookSource: bodies, authentication, ids, header extensions, and
requests that already are CloudEvents."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from eventing.events import validate
from sources.support.signatures import sha256_signature
from sources.webhook import adapter as webhook
from tests.unit.webhooks.support import BROKER_SINK, RecordingEmit, request, utc

SECRET = "s3cret-for-tests"
ENV = {"EVENTING_SECRET_HOOK_TOKEN": SECRET}
NOW = utc(2024, 5, 1, 12, 0, 0)
JSON_HEADERS = {"Content-Type": "application/json"}


def make_adapter(**spec: Any) -> webhook.WebhookAdapter:
    source = webhook.WebhookSource.model_validate(
        {
            "apiVersion": "eventing.local/v1alpha1",
            "kind": "WebhookSource",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"sink": BROKER_SINK, **spec},
        }
    )
    return webhook.build(source, environ=ENV, now=lambda: NOW)


async def post(adapter: webhook.WebhookAdapter, body: bytes, headers: dict[str, str]) -> Any:
    emit = RecordingEmit()
    response = await adapter.handle(request(body, headers), emit)
    return response, emit.events


async def test_json_body_with_defaults() -> None:
    body = b'{"order": 42}'
    response, [event] = await post(
        make_adapter(),
        body,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": "order-42",
        },
    )
    assert response.status == 202
    assert json.loads(response.body) == {"id": "order-42"}
    assert event.attributes == {
        "specversion": "1.0",
        "id": "order-42",
        "source": "/apis/v1alpha1/namespaces/shop/webhooksources/orders",
        "type": "local.eventing.webhook",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json; charset=utf-8",
    }
    assert event.data == body
    validate(event.attributes)


async def test_id_header_order_and_fresh_uuid_without_one() -> None:
    adapter = make_adapter()
    _, [by_request_id] = await post(adapter, b"{}", {**JSON_HEADERS, "X-Request-Id": "req-1"})
    _, [both] = await post(
        adapter, b"{}", {**JSON_HEADERS, "X-Request-Id": "req-1", "Idempotency-Key": "idem-1"}
    )
    _, [neither] = await post(adapter, b"{}", JSON_HEADERS)
    assert by_request_id.id == "req-1"
    assert both.id == "idem-1"
    assert uuid.UUID(neither.id).version == 4


async def test_configured_attributes_and_header_extensions() -> None:
    adapter = make_adapter(
        event={
            "type": "com.example.order.created",
            "source": "https://shop.example/orders",
            "subjectHeader": "X-Order-Id",
            "idHeaders": ["X-Delivery"],
        },
        extensionHeaders=["X-Tenant-Id", "X-Region"],
        ceOverrides={"extensions": {"team": "shop"}},
    )
    _, [event] = await post(
        adapter,
        b"{}",
        {
            **JSON_HEADERS,
            "X-Delivery": "d-7",
            "X-Order-Id": "42",
            "X-Tenant-Id": "acme\x01corp",
            "X-Region": "",
        },
    )
    assert event.id == "d-7"
    assert event.type == "com.example.order.created"
    assert event.source == "https://shop.example/orders"
    assert event.attributes["subject"] == "42"
    assert event.attributes["xtenantid"] == "acmecorp"  # control character removed
    assert "xregion" not in event.attributes  # empty values are left out
    assert event.attributes["team"] == "shop"
    validate(event.attributes)


async def test_form_body_becomes_a_json_object() -> None:
    body = b"name=Ada+Lovelace&tag=a&tag=b&empty="
    _, [event] = await post(
        make_adapter(), body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert event.datacontenttype == "application/json"
    assert json.loads(event.data) == {"name": "Ada Lovelace", "tag": ["a", "b"], "empty": ""}


async def test_form_body_kept_raw_when_asked() -> None:
    body = b"a=1&b=2"
    _, [event] = await post(
        make_adapter(formBodies="raw"), body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert event.data == body
    assert event.datacontenttype == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"a=1&&b", "application/x-www-form-urlencoded", 400),
        (b"--x\r\n", "multipart/form-data; boundary=x", 415),
        (b"[]", "application/cloudevents-batch+json", 415),
        (b"x", "application/cloudevents+avro", 415),
        (b'{"specversion": "1.0", "type": "t"}', "application/cloudevents+json", 400),
    ],
    ids=["bad-json", "bad-form", "multipart", "batch", "avro", "ce-missing-id"],
)
async def test_refused_bodies(body: bytes, content_type: str, status: int) -> None:
    response, events = await post(make_adapter(), body, {"Content-Type": content_type})
    assert response.status == status
    assert events == []


async def test_other_media_types_are_opaque_and_empty_body_has_no_data() -> None:
    adapter = make_adapter()
    _, [xml] = await post(adapter, b"<a/>", {"Content-Type": "application/xml"})
    _, [raw] = await post(adapter, b"\x00\x01", {})
    _, [empty] = await post(adapter, b"", {})
    assert (xml.data, xml.datacontenttype) == (b"<a/>", "application/xml")
    assert (raw.data, raw.datacontenttype) == (b"\x00\x01", "application/octet-stream")
    assert empty.data is None
    assert "datacontenttype" not in empty.attributes


def hmac_adapter() -> webhook.WebhookAdapter:
    return make_adapter(
        auth={"hmac": {"secretKeyRef": {"name": "hook", "key": "token"}, "header": "X-Sig"}}
    )


async def test_hmac_ok() -> None:
    body = b'{"ok": true}'
    sig = sha256_signature(SECRET.encode(), body)
    response, events = await post(hmac_adapter(), body, {**JSON_HEADERS, "X-Sig": sig})
    assert response.status == 202
    assert len(events) == 1


@pytest.mark.parametrize(
    "signature",
    [None, sha256_signature(b"wrong", b"{}"), sha256_signature(SECRET.encode(), b"{ }")],
    ids=["missing", "wrong-secret", "other-body"],
)
async def test_hmac_bad(signature: str | None) -> None:
    headers = {**JSON_HEADERS, **({"X-Sig": signature} if signature else {})}
    response, events = await post(hmac_adapter(), b"{}", headers)
    assert response.status == 401
    assert events == []


def bearer_adapter() -> webhook.WebhookAdapter:
    return make_adapter(auth={"bearer": {"secretKeyRef": {"name": "hook", "key": "token"}}})


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_bearer_ok(scheme: str) -> None:
    headers = {**JSON_HEADERS, "Authorization": f"{scheme} {SECRET}"}
    response, events = await post(bearer_adapter(), b"{}", headers)
    assert response.status == 202
    assert len(events) == 1


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {SECRET}", SECRET, "Bearer"]
)
async def test_bearer_bad(authorization: str | None) -> None:
    headers = {**JSON_HEADERS, **({"Authorization": authorization} if authorization else {})}
    response, events = await post(bearer_adapter(), b"{}", headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert events == []
    assert SECRET not in response.body.decode()


async def test_auth_also_guards_cloudevent_requests() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
    response, events = await post(bearer_adapter(), b"", headers)
    assert response.status == 401
    assert events == []


async def test_oversized_body_answers_413() -> None:
    adapter = make_adapter(maxBodyBytes=16)
    response, events = await post(adapter, b'{"x": "' + b"a" * 32 + b'"}', JSON_HEADERS)
    assert response.status == 413
    assert events == []


async def test_binary_cloudevent_is_accepted_as_is() -> None:
    body = b'{"temperature": 21}'
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "reading-1",
        "ce-source": "urn:sensor:7",
        "ce-type": "com.example.reading",
        "ce-subject": "Euro%20%E2%82%AC",
        "ce-partitionkey": "sensor-7",
        "Idempotency-Key": "ignored-for-cloudevents",
    }
    response, [event] = await post(
        make_adapter(ceOverrides={"extensions": {"via": "hook"}}), body, headers
    )
    assert response.status == 202
    assert event.attributes == {
        "specversion": "1.0",
        "id": "reading-1",
        "source": "urn:sensor:7",
        "type": "com.example.reading",
        "subject": "Euro €",
        "partitionkey": "sensor-7",
        "datacontenttype": "application/json",
        "via": "hook",
    }
    assert event.data == body


async def test_structured_cloudevent_is_accepted_as_is() -> None:
    envelope = {"specversion": "1.0", "id": "s-1", "source": "/x", "type": "t", "data": {"a": 1}}
    _, [event] = await post(
        make_adapter(),
        json.dumps(envelope).encode(),
        {"Content-Type": "application/cloudevents+json"},
    )
    assert (event.id, event.source, event.type) == ("s-1", "/x", "t")
    assert json.loads(event.data) == {"a": 1}


async def test_cloudevents_are_wrapped_when_not_accepted() -> None:
    headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "x"}
    _, [event] = await post(make_adapter(acceptCloudEvents=False), b"{}", headers)
    assert event.type == "local.eventing.webhook"
    assert event.id != "x"


async def test_store_error_answers_503_and_next_attempt_succeeds() -> None:
    adapter = make_adapter()
    emit = RecordingEmit(fail=1)
    headers = {**JSON_HEADERS, "Idempotency-Key": "k-1"}
    first = await adapter.handle(request(b"{}", headers), emit)
    second = await adapter.handle(request(b"{}", headers), emit)
    assert first.status == 503
    assert first.headers["Retry-After"] == "3"
    assert second.status == 202
    assert [e.id for e in emit.events] == ["k-1"]


def test_paths() -> None:
    assert make_adapter().path == "/webhooks/shop/orders"
    assert make_adapter(path="/hooks/shop/orders").path == "/hooks/shop/orders"
    assert make_adapter(maxBodyBytes=10).max_body_bytes == 10
    assert make_adapter().max_body_bytes == 1024 * 1024
