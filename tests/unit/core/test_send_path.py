"""The delivery send path's shortcuts give the same answers as the long way:

- ``binary_head`` (the request's header bytes) carries exactly the headers of
  ``encode_binary``, whatever the attribute values (random, percent-encoded ones too);
- the response parser's fast path for heads seen before (``KnownHeads``) gives the
  same outcome, error and keep-alive decision as the full parser for every response,
  however it is split across reads;
- an ``HttpSink`` delivery over loopback arrives as the event it sent, with the
  subscriber's fixed headers, and a ``try_send`` that gets no answer ends with a
  timeout outcome, not before its deadline.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventing.codec import http as binding
from eventing.delivery.sink import Outcome
from eventing.events import AttributeValue, Event
from sinks.http import HttpSink, outcome
from sinks.httpclient import Pool, Target
from sinks.httpconn import Connection, KnownHeads, Response
from tests.unit.core.test_httpclient import ACCEPTED, Server, fixed

NAMES = st.one_of(
    st.sampled_from(["id", "source", "type", "subject", "time", "dataschema", "traceparent"]),
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(lambda n: n != "data"),
)
VALUES: st.SearchStrategy[AttributeValue] = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=30),
    st.text('abc %"-/:.', max_size=10),
    st.integers(-(2**31), 2**31 - 1),
    st.booleans(),
)


def parse_lines(raw: bytes) -> dict[str, str]:
    text = raw.decode()
    assert text.endswith("\r\n")
    return dict(line.split(": ", 1) for line in text[:-2].split("\r\n"))


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(NAMES, VALUES, max_size=8),
    st.one_of(st.none(), st.sampled_from(["application/json", "text/plain; charset=utf-8"])),
)
def test_binary_head_carries_the_headers_of_encode_binary(
    extra: dict[str, AttributeValue], content_type: str | None
) -> None:
    attributes: dict[str, AttributeValue] = {"specversion": "1.0", **extra}
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    event = Event(attributes, b"data")
    headers, _ = binding.encode_binary(event)
    assert parse_lines(binding.binary_head(event)) == headers


# -- the response parser's fast path against the full parser -------------------------------

REPLY = (
    b"HTTP/1.1 200 OK\r\nce-specversion: 1.0\r\nce-id: r-1\r\nce-source: /s\r\n"
    b"ce-type: reply\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
)
RESPONSES = [
    ACCEPTED,
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nDate: Fri, 04 Dec 2026 18:00:00 GMT\r\nServer: x\r\n"
    b"Content-Length: 2\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 202 Accepted\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\nHTTP/1.1 202",  # extra bytes
    REPLY,
    b"HTTP/1.1 200 OK\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 60\r\n"
    b'\r\n{"specversion":"1.0","id":"1","source":"/s","type":"t"}    ',
    b"HTTP/1.1 200 OK\r\nce-specversion: 1.0\r\nContent-Length: 0\r\n\r\n",  # bad reply
    b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy",
    b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 99999999\r\n\r\n",  # over the limit
    b"HTTP/1.1 202 Accepted\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 2x2 Odd\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 202 Accepted\r\nContent-Length: zero\r\n\r\n",
    b"HTTP/1.1 202 Accepted\r\nno colon\r\n\r\n",
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n",  # cut off
    b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 299 Custom\r\ncontent-length:   0  \r\n\r\n",
]

Seen = tuple[object, bool]


def feed(chunks: list[bytes], known: KnownHeads | None) -> Seen:
    """What one exchange gives: the response and its outcome (or the error), and
    whether the connection may be reused."""
    results: list[Response | BaseException] = []
    conn = Connection(1024 * 1024, known)
    conn.on_done = results.append
    for chunk in chunks:
        if conn.on_done is None:
            break
        conn.data_received(chunk)
    if conn.on_done is not None:
        conn.connection_lost(None)
    assert len(results) == 1
    result = results[0]
    seen: object
    if isinstance(result, BaseException):
        seen = (type(result), str(result))
    else:
        seen = (result, outcome(result.status, result.headers, result.body))
    return seen, conn.reusable and not conn.closed


@pytest.mark.parametrize("raw", RESPONSES, ids=range(len(RESPONSES)))
def test_fast_path_answers_as_the_full_parser_at_every_split(raw: bytes) -> None:
    known = KnownHeads()
    first = feed([raw], known)  # learns the head, if it is one to learn
    assert first == feed([raw], None)
    for at in range(len(raw) + 1):
        chunks = [part for part in (raw[:at], raw[at:]) if part]
        assert feed(chunks, known) == feed(chunks, None), at
    assert feed([raw], known) == first


def test_ordinary_heads_are_learned() -> None:
    known = KnownHeads()
    feed([ACCEPTED], known)
    feed([RESPONSES[2]], known)
    assert ACCEPTED in known.empty
    assert RESPONSES[2][: RESPONSES[2].index(b"\r\n\r\n") + 4] in known.heads
    for unusual in (RESPONSES[5], RESPONSES[10], RESPONSES[11], RESPONSES[13]):
        feed([unusual], known)
    assert len(known.heads) == 2


def test_known_heads_are_bounded() -> None:
    known = KnownHeads()
    for n in range(1000):
        feed([b"HTTP/1.1 202 Accepted\r\nX-Request: %d\r\nContent-Length: 0\r\n\r\n" % n], known)
    assert len(known.heads) <= 64
    assert len(known.empty) <= len(known.heads)


# -- over loopback --------------------------------------------------------------------------


async def test_sink_sends_the_event_and_its_fixed_headers() -> None:
    requests: list[bytes] = []

    def record(request: bytes) -> bytes:
        requests.append(request)
        return ACCEPTED

    server = Server(record)
    url = await server.start()
    pool = Pool()
    session = aiohttp.ClientSession()
    sink = HttpSink(url.replace("127.0.0.1", "me:pw@127.0.0.1"), pool, session)
    event = Event(
        {
            "specversion": "1.0",
            "id": "a b%\u00e9",
            "source": "/s",
            "type": "t",
            "datacontenttype": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "count": 3,
        },
        b'{"x":1}',
    )
    try:
        assert (await sink.send(event, timeout=5, structured=False)).status == 202
        answers: asyncio.Queue[Outcome] = asyncio.Queue()
        assert sink.try_send(event, timeout=5, structured=True, done=answers.put_nowait)
        assert (await asyncio.wait_for(answers.get(), 5)).status == 202
    finally:
        pool.close()
        await session.close()
        await server.stop()
    binary, structured = requests
    head, _, body = binary.partition(b"\r\n\r\n")
    lines = parse_lines(head.split(b"\r\n", 1)[1] + b"\r\n")
    assert body == b'{"x":1}'
    assert lines["Content-Length"] == "7"
    assert lines["Prefer"] == "reply"
    assert lines["Authorization"] == "Basic bWU6cHc="
    assert lines["traceparent"] == event.attributes["traceparent"]
    content_type = lines.pop("Content-Type")
    assert binding.decode_binary(lines.items(), content_type, body) == Event(
        {**event.attributes, "count": "3"}, body
    )
    assert b"\r\nContent-Type: application/cloudevents+json\r\n" in structured


async def test_try_send_times_out_at_its_deadline_not_before() -> None:
    server = Server(fixed(ACCEPTED))
    target = Target.parse(await server.start())
    pool = Pool()
    loop = asyncio.get_running_loop()
    try:
        await pool.post(target, [], b"", 5)  # an idle keep-alive connection for try_post
        server.delay = 30.0  # then the server stops answering in time
        answers: asyncio.Queue[tuple[float, Response | BaseException]] = asyncio.Queue()
        sent_at = loop.time()
        assert pool.try_post(
            target, [], b"x", 0.2, lambda result: answers.put_nowait((loop.time(), result))
        )
        answered_at, result = await asyncio.wait_for(answers.get(), 5)
        assert isinstance(result, TimeoutError)
        assert answered_at >= sent_at + 0.2
        assert not pool.full(target)
    finally:
        pool.close()
        await server.stop()


async def test_a_large_body_goes_out_whole_beside_its_head() -> None:
    requests: list[bytes] = []

    def record(request: bytes) -> bytes:
        requests.append(request)
        return ACCEPTED

    server = Server(record)
    target = Target.parse(await server.start())
    pool = Pool()
    body = bytes(range(256)) * 400  # 100 KiB: written beside the head, not joined to it
    try:
        assert (await pool.post(target, [("ce-id", "1")], body, 5)).status == 202
        assert (await pool.post(target, [], b"small", 5)).status == 202
    finally:
        pool.close()
        await server.stop()
    assert requests[0].endswith(b"\r\n\r\n" + body)
    assert b"\r\nContent-Length: 102400\r\n" in requests[0]
    assert requests[1].endswith(b"\r\n\r\nsmall")


EVENT_BASE: dict[str, AttributeValue] = {
    "specversion": "1.0",
    "id": "1",
    "source": "/s",
    "type": "t",
    "datacontenttype": "application/json",
}


async def test_an_event_that_cannot_be_encoded_keeps_no_connection_or_slot() -> None:
    """``try_send`` takes the idle connection before encoding (at a full host encoding
    would be wasted); an event whose headers cannot be encoded gives it back."""
    server = Server(fixed(ACCEPTED))
    url = await server.start()
    target = Target.parse(url)
    pool = Pool()
    session = aiohttp.ClientSession()
    sink = HttpSink(f"{url}/", pool, session)
    answers: asyncio.Queue[Outcome] = asyncio.Queue()
    try:
        await pool.post(target, [], b"", 5)  # one idle keep-alive connection
        bad = Event({**EVENT_BASE, "traceparent": "\ud800"}, b"{}")  # not encodable
        with pytest.raises(UnicodeEncodeError):
            sink.try_send(bad, timeout=5, structured=False, done=answers.put_nowait)
        assert not pool.full(target)
        good = Event(dict(EVENT_BASE), b"{}")
        # Sent on the same keep-alive connection: it was given back.
        assert sink.try_send(good, timeout=5, structured=False, done=answers.put_nowait)
        assert (await asyncio.wait_for(answers.get(), 5)).status == 202
    finally:
        pool.close()
        await session.close()
        await server.stop()
