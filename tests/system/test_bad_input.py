"""Hostile and broken input at the ingress: every request here is refused with the
documented status and leaves no trace (no stored event, no commit, no delivery).

Requests aiohttp will not send (raw CR/LF in headers, obsolete line folding,
duplicate headers, a body trickled slower than the read deadline) go over a raw
asyncio socket (:mod:`tests.support.wire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from eventing.app.runtime import Running
from eventing.errors import ConfigError
from eventing.ingress.server import IngressSettings
from tests.conftest import SystemFactory
from tests.support.mesh import (
    BROKER,
    assert_nothing_stored,
    broker_doc,
    broker_url,
    ce_headers,
    manifests,
    post,
    run_system,
    settled,
    trigger_doc,
)
from tests.support.subscriber import RecordingSubscriber
from tests.support.wire import open_raw, raw_exchange, read_response, request_bytes

STRUCTURED = {"Content-Type": "application/cloudevents+json"}
MIB = 1024 * 1024


def _setup(url: str) -> str:
    return manifests(broker_doc(), trigger_doc("all", f"{url}/all"))


def _event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": "x1",
        "source": "/bad",
        "type": "bad.input",
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()


async def _refused(
    running: Running, status: int, headers: dict[str, str], body: bytes = b""
) -> str:
    async with aiohttp.ClientSession() as http:
        got, answer = await post(http, broker_url(running), headers, body)
    assert got == status, answer
    assert_nothing_stored(running)
    return str(json.loads(answer)["error"]) if answer else ""


# -- size --------------------------------------------------------------------------------


async def test_body_over_the_default_limit_is_413(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(
        manifests(
            broker_doc(),
            trigger_doc("binary", f"{subscriber.url}/binary"),
            trigger_doc("structured", f"{subscriber.url}/structured", delivery={"format": "json"}),
        )
    )
    headers = {**ce_headers("big"), "Content-Type": "application/octet-stream"}
    await _refused(running, 413, headers, _large(b"x" * (MIB + 1)))
    await _refused(running, 413, STRUCTURED, _large(json.dumps(_event(data="x" * MIB)).encode()))
    # Exactly at the limit is accepted and delivered in both modes (the structured
    # form is larger than the limit: Base64).
    async with aiohttp.ClientSession() as http:
        status, _ = await post(http, broker_url(running), headers, _large(b"y" * MIB))
    assert status == 202
    [binary] = await subscriber.wait_count(1, "/binary")
    assert binary.data == b"y" * MIB
    [structured] = await subscriber.wait_count(1, "/structured")
    assert structured.data == b"y" * MIB
    await settled(running)


def _large(body: bytes) -> Any:
    """aiohttp warns (an error here) when a body over 1 MiB is passed as bytes."""
    return io.BytesIO(body)


async def _chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"z" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


@pytest.mark.parametrize(
    ("total", "status"), [(4096, 413), (1024, 202)], ids=["over-limit", "at-limit"]
)
async def test_chunked_body_without_content_length(
    total: int, status: int, tmp_path: Path, subscriber: RecordingSubscriber
) -> None:
    settings = IngressSettings(max_body_bytes=1024)
    async with run_system(tmp_path / "sys", _setup(subscriber.url), ingress=settings) as running:
        headers = {**ce_headers("chunked"), "Content-Type": "application/octet-stream"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(broker_url(running), data=_chunks(total), headers=headers) as response,
        ):
            assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
            assert "Content-Length" not in response.request_info.headers
            assert response.status == status, await response.text()
        if status == 413:
            assert_nothing_stored(running)
        else:
            [event] = await subscriber.wait_count(1)
            assert event.data == b"z" * total
            await settled(running)


# -- not JSON / not an event ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"just a string"', id="string"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(
            b'{"specversion":"1.0","specversion":"1.0","id":"1","source":"/s","type":"t"}',
            id="duplicate-member",
        ),
        pytest.param(b'{"specversion":"1.0","id":"1","source":"/s","type":"t","n":NaN}', id="nan"),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":' + b"1" * 5000 + b"}",
            id="integer-beyond-digit-limit",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":'
            + b"[" * 100
            + b"]" * 100
            + b"}",
            id="nested-too-deep",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{},'
            b'"data_base64":"e30="}',
            id="data-and-data-base64",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"not base64!"}',
            id="bad-base64",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{}}',
            id="object-attribute",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}',
            id="bad-time",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":""}',
            id="empty-subject",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1}x',
            id="trailing-garbage",
        ),
    ],
)
async def test_invalid_structured_body_is_400(
    body: bytes, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    await _refused(running, 400, STRUCTURED, body)


async def test_non_json_structured_format_is_415(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    await _refused(running, 415, {"Content-Type": "application/cloudevents+avro"}, b"\x00")


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
@pytest.mark.parametrize("how", ["absent", "empty"])
@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_missing_required_attribute_is_400(
    missing: str, how: str, mode: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    if mode == "binary":
        headers = ce_headers()
        if how == "absent":
            del headers[f"ce-{missing}"]
        else:
            headers[f"ce-{missing}"] = ""
        error = await _refused(running, 400, headers)
    else:
        body = _event(**{missing: _DROP if how == "absent" else ""})
        error = await _refused(running, 400, STRUCTURED, json.dumps(body).encode())
    assert missing in error


@pytest.mark.parametrize("version", ["2.0", "1", "1.0.0", "0.2", "19.0", " 1.0", "1.0 "])
@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_unsupported_specversion_is_400(
    version: str, mode: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    if mode == "binary":
        if version != version.strip():
            version = version.replace(" ", "%20")  # aiohttp strips raw edge spaces
        await _refused(running, 400, ce_headers(specversion=version))
    else:
        await _refused(running, 400, STRUCTURED, json.dumps(_event(specversion=version)).encode())


@pytest.mark.parametrize("value", [1.0, 1, True], ids=["float", "int", "bool"])
async def test_non_string_specversion_in_structured_mode_is_400(
    value: object, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    await _refused(running, 400, STRUCTURED, json.dumps(_event(specversion=value)).encode())


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**63, 4247483647])
async def test_extension_integer_out_of_range_is_400(
    value: int, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    error = await _refused(running, 400, STRUCTURED, json.dumps(_event(count=value)).encode())
    assert "count" in error


async def test_extension_integer_at_the_int32_bounds_is_accepted(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    async with aiohttp.ClientSession() as http:
        for i, value in enumerate((2**31 - 1, -(2**31))):
            status, _ = await post(
                http,
                broker_url(running),
                STRUCTURED,
                json.dumps(_event(id=f"b{i}", count=value)).encode(),
            )
            assert status == 202
    events = await subscriber.wait_count(2)
    assert sorted(e.attributes["count"] for e in events) == sorted([str(2**31 - 1), str(-(2**31))])


# -- header injection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a%0D%0AX-Injected:%20yes", "a%0Ab", "a%0Db", "%0D%0A%0D%0Abody", "tab%09inside", "del%7F"],
)
async def test_percent_encoded_control_characters_are_400(
    value: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    error = await _refused(running, 400, ce_headers("inj", myext=value))
    assert "myext" in error


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"ce-myext: first\r\n X-Injected: yes", id="obs-fold"),
        pytest.param(b"ce-myext: first\r\n\tsecond", id="obs-fold-tab"),
        pytest.param(b"ce-myext: a\rX-Injected: yes", id="bare-cr"),
        pytest.param(b"ce-myext: a\nX-Injected: yes", id="bare-lf"),
        pytest.param(b"ce-myext: a\x00b", id="nul"),
        pytest.param(b"ce-my ext: a", id="space-in-name"),
    ],
)
async def test_raw_header_injection_is_refused(
    line: bytes, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    head = request_bytes(
        "POST", broker_url(running), ce_headers("raw").items(), content_length=False
    )
    request = head[:-2] + line + b"\r\nContent-Length: 0\r\n\r\n"
    response = await raw_exchange(broker_url(running), request)
    assert response is None or response.status == 400, response
    assert_nothing_stored(running)


@pytest.mark.parametrize(
    "duplicate",
    [
        [("ce-id", "one"), ("ce-id", "two")],
        [("ce-id", "same"), ("CE-ID", "same")],
        [("ce-type", "t"), ("ce-Type", "t2")],
        [("ce-specversion", "1.0"), ("ce-specversion", "1.0")],
    ],
    ids=["different-values", "same-value-other-case", "type", "specversion"],
)
async def test_duplicate_ce_headers_are_400(
    duplicate: list[tuple[str, str]], system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    names = {name.lower() for name, _ in duplicate}
    headers = [(k, v) for k, v in ce_headers("dup").items() if k not in names]
    response = await raw_exchange(
        broker_url(running), request_bytes("POST", broker_url(running), headers + duplicate)
    )
    assert response is not None
    assert response.status == 400, response
    assert "more than once" in json.loads(response.body)["error"]
    assert_nothing_stored(running)


# -- slow clients ---------------------------------------------------------------------------


async def _finish_and_reuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str, remaining: int
) -> None:
    """After the 408: send the rest of the declared body and one more request on the
    same connection, and read its answer.

    Why: aiohttp keeps reading an unfinished body for its lingering time (10 s) after
    a response, and if the client goes away meanwhile that reader is never woken (it
    outlives the server's shutdown; see the report). A client that completes its
    request ends the lingering at once, and the OPTIONS answer proves the server got
    there, so nothing is left running when the test ends.
    """
    writer.write(b"s" * remaining)
    writer.write(request_bytes("OPTIONS", url, [], content_length=False))
    await writer.drain()
    async with asyncio.timeout(20):
        follow_up = await read_response(reader)
    assert follow_up is not None
    assert follow_up.status == 200


async def test_slow_client_gets_408_and_nothing_is_stored(
    tmp_path: Path, subscriber: RecordingSubscriber
) -> None:
    settings = IngressSettings(read_timeout=0.3)
    async with run_system(tmp_path / "sys", _setup(subscriber.url), ingress=settings) as running:
        url = broker_url(running)
        length = 10_000
        head = request_bytes(
            "POST",
            url,
            [
                *ce_headers("slow").items(),
                ("Content-Type", "text/plain"),
                ("Content-Length", str(length)),
            ],
            content_length=False,
        )
        reader, writer = await open_raw(url)
        sent = 0

        async def trickle() -> None:
            # One byte per 50 ms: the whole body would take over 8 minutes.
            nonlocal sent
            while sent < length:
                writer.write(b"s")
                sent += 1
                await writer.drain()
                await asyncio.sleep(0.05)

        try:
            writer.write(head)
            await writer.drain()
            sender = asyncio.create_task(trickle(), name="trickle")
            try:
                async with asyncio.timeout(20):
                    response = await read_response(reader)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            assert response is not None
            assert response.status == 408, response
            assert 0 < sent < length
            await _finish_and_reuse(reader, writer, url, length - sent)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert_nothing_stored(running)
        assert subscriber.received == []


async def test_client_that_stops_sending_gets_408(
    tmp_path: Path, subscriber: RecordingSubscriber
) -> None:
    settings = IngressSettings(read_timeout=0.3)
    async with run_system(tmp_path / "sys", _setup(subscriber.url), ingress=settings) as running:
        url = broker_url(running)
        part = b'{"specversion":"1.0","id":"half"'
        reader, writer = await open_raw(url)
        try:
            writer.write(
                request_bytes(
                    "POST",
                    url,
                    [*STRUCTURED.items(), ("Content-Length", "500")],
                    content_length=False,
                )
                + part
            )
            await writer.drain()
            async with asyncio.timeout(20):
                response = await read_response(reader)
            assert response is not None
            assert response.status == 408, response
            await _finish_and_reuse(reader, writer, url, 500 - len(part))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert_nothing_stored(running)


# -- a start that fails ----------------------------------------------------------------------


async def test_failed_start_closes_its_http_session(tmp_path: Path) -> None:
    # Valid manifests whose start fails after the store and session exist: a GitHub
    # source whose secret is not set anywhere.
    source = {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitHubSource",
        "metadata": {"name": "repo"},
        "spec": {
            "ownerAndRepository": "o/r",
            "eventTypes": ["push"],
            "secretToken": {"secretKeyRef": {"name": "nowhere", "key": "token"}},
            "sink": {
                "ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": BROKER}
            },
        },
    }
    text = manifests(broker_doc(), trigger_doc("t", "http://127.0.0.1:9/"), source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            async with run_system(tmp_path / "sys", text):
                pass
        except ConfigError:
            pass
        else:
            pytest.fail("a source whose secret is missing must refuse to start")
        gc.collect()
    leaks = [w for w in caught if "Unclosed client session" in str(w.message)]
    assert leaks == []
