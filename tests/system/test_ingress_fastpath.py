"""The ingress worker's fast path (eventing/ingress/fastpath.py) over real sockets: the
hot request is answered by it, everything else by aiohttp behind it, and a client
cannot tell which: for the same raw requests both give the same status, headers and
body. A connection handed to aiohttp keeps working; idle connections are closed."""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from eventing.errors import StoreFullError
from eventing.events import Event
from eventing.ingress import fastpath, ipc
from eventing.ingress.auth import IngressAuth, Rule, digest
from eventing.ingress.fastpath import FastPath
from eventing.ingress.server import Ingress, IngressSettings
from eventing.ingress.worker import RemoteBroker, _Channel
from eventing.metrics import Metrics

PATH = "/default/default"
TOKEN = "s3cret-token"


@dataclass
class Memory:
    """A publisher that keeps what it is given (or refuses, when ``full``)."""

    key: str = "default/default"
    events: list[Event] = field(default_factory=list)
    full: bool = False

    async def publish(self, events: Sequence[Event]) -> None:
        if self.full:
            error = StoreFullError("full")
            error.retry_after = 3.0
            raise error
        self.events.extend(events)


def binary(id_: str = "e1", body: bytes = b'{"a":1}', extra: bytes = b"") -> bytes:
    return (
        b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\n"
        b"ce-id: " + id_.encode() + b"\r\nce-source: /t\r\nce-type: t\r\n"
        b"Content-Type: application/json\r\n" + extra + b"Content-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def raw(head: str, body: bytes = b"", host: bool = True) -> bytes:
    """A request from its head's lines (a Host header added after the first)."""
    first, _, rest = head.partition("\n")
    lines = [first, "Host: x"] if host else [first]
    lines += rest.split("\n") if rest else []
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


STRUCTURED = b'{"specversion":"1.0","id":"s1","source":"/t","type":"t","data":1}'
ONE = f"POST {PATH} HTTP/1.1\nce-specversion: 1.0\nce-id: x\nce-source: /t\nce-type: t"


@asynccontextmanager
async def serving(
    fast: bool, *, auth: IngressAuth | None = None, idle: float = 15.0, cap: int = 4096
) -> AsyncIterator[tuple[int, Memory, FastPath | None]]:
    memory = Memory()
    settings = IngressSettings(idle_timeout=idle, max_connections=cap)
    ingress = Ingress({memory.key: memory}, Metrics(), settings, (), auth)
    server = ingress.server()
    front = FastPath(ingress, server) if fast else None
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(front or server, "127.0.0.1", 0)
    try:
        yield listening.sockets[0].getsockname()[1], memory, front
    finally:
        listening.close()
        if front is not None:
            await front.shutdown(2.0)
        await server.shutdown(2.0)


async def exchange(port: int, payloads: Sequence[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """Send each payload on one connection after the previous answer; the answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for payload in payloads:
            writer.write(payload)
            answers.append(await read_response(reader))
    finally:
        writer.close()
    return answers


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


CASES = {
    "binary": binary(),
    "structured": raw(
        f"POST {PATH} HTTP/1.1\nContent-Type: application/cloudevents+json\n"
        f"Content-Length: {len(STRUCTURED)}",
        STRUCTURED,
    ),
    "no Host": raw(f"{ONE}\nContent-Length: 2", b"{}", host=False),
    "two Hosts": raw(f"{ONE}\nHost: y\nContent-Length: 2", b"{}"),
    "two Content-Types": raw(
        f"{ONE}\nContent-Type: text/plain\nContent-Type: text/html\nContent-Length: 2", b"{}"
    ),
    "websocket key1": raw(f"{ONE}\nSec-WebSocket-Key1: 1\nContent-Length: 2", b"{}"),
    "padded values": raw(f"{ONE}\nce-subject: \t padded \t\nContent-Length: 2", b"{}"),
    "keep-alive": raw(f"{ONE}\nConnection: keep-alive\nContent-Length: 2", b"{}"),
    "close": raw(f"{ONE}\nConnection: close\nContent-Length: 2", b"{}"),
    "HTTP/1.0": raw(f"POST {PATH} HTTP/1.0\nce-specversion: 1.0\nContent-Length: 0"),
    "no length": raw(ONE),
    "length 01": raw(f"{ONE}\nContent-Length: 01", b"x"),
    "length of 5,000 digits": raw(f"{ONE}\nContent-Length: {'9' * 5000}"),
    "obs-fold": raw(f"{ONE}\nce-subject: a\n b\nContent-Length: 0"),
    "space before colon": raw(f"{ONE}\nce-subject : a\nContent-Length: 0"),
    "latin-1 value": raw(f"{ONE}\nce-subject: caf\u00e9\nContent-Length: 0").replace(
        b"caf\xc3\xa9", b"caf\xe9"
    ),
    "ttl spent": raw(f"{ONE}\nce-knativebrokerttl: 0\nContent-Length: 0"),
    "query": raw(f"POST {PATH}?x=1 HTTP/1.1\nce-specversion: 1.0\nContent-Length: 0"),
    "no id": raw(f"POST {PATH} HTTP/1.1\nce-specversion: 1.0\nce-source: /t\nContent-Length: 0"),
    "twice the id": binary(extra=b"ce-id: again\r\n"),
    "unknown broker": raw("POST /default/other HTTP/1.1\nContent-Length: 0"),
    "GET": raw(f"GET {PATH} HTTP/1.1"),
    "OPTIONS": raw(f"OPTIONS {PATH} HTTP/1.1"),
    "gzip": raw(
        f"POST {PATH} HTTP/1.1\nce-specversion: 1.0\nce-id: g\nce-source: /t\nce-type: t\n"
        "Content-Encoding: gzip\nContent-Length: 3",
        b"abc",
    ),
    "too large": raw(f"POST {PATH} HTTP/1.1\nContent-Length: 99999999"),
    "xml format": raw(
        f"POST {PATH} HTTP/1.1\nContent-Type: application/cloudevents+xml\nContent-Length: 2",
        b"{}",
    ),
    "batch": raw(
        f"POST {PATH} HTTP/1.1\nContent-Type: application/cloudevents-batch+json\n"
        "Content-Length: 57",
        b'[{"specversion":"1.0","id":"b1","source":"/t","type":"t"}]',
    ),
}


SERVED_FAST = {"binary", "structured", "padded values", "keep-alive"}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_same_answer_as_aiohttp(case: str) -> None:
    """Each case on a fresh connection to the fast path and to aiohttp alone."""
    answers = []
    for fast in (True, False):
        async with serving(fast) as (port, _, front):
            [(status, headers, body)] = await exchange(port, [CASES[case]])
            headers.pop("date")
            answers.append((status, headers, body))
            if front is not None:
                assert front.served == (case in SERVED_FAST)
                assert front.handed_over == (case not in SERVED_FAST)
    assert answers[0] == answers[1]


async def test_hot_requests_stay_on_the_fast_path() -> None:
    async with serving(True) as (port, memory, front):
        assert front is not None
        answers = await exchange(port, [binary("1"), binary("2"), CASES["structured"]])
        assert [a[0] for a in answers] == [202, 202, 202]
        # two requests in one write (pipelined): answered in order
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(binary("3") + binary("4"))
        assert [(await read_response(reader))[0] for _ in range(2)] == [202, 202]
        writer.close()
        assert (front.served, front.handed_over) == (5, 0)
        assert [e.id for e in memory.events] == ["1", "2", "s1", "3", "4"]
        assert all(e.attributes["knativearrivaltime"] for e in memory.events)
        assert memory.events[0].data == b'{"a":1}'


async def test_a_connection_handed_to_aiohttp_keeps_working() -> None:
    async with serving(True) as (port, memory, front):
        assert front is not None
        answers = await exchange(port, [binary("1"), CASES["no id"], binary("2")])
        assert [a[0] for a in answers] == [202, 400, 202]
        assert "required attribute 'id'" in json.loads(answers[1][2])["error"]
        assert (front.served, front.handed_over) == (1, 1)
        assert [e.id for e in memory.events] == ["1", "2"]
        # a body that arrives in two pieces is read by aiohttp
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        whole = binary("3")
        writer.write(whole[:-3])
        await writer.drain()
        await asyncio.sleep(0)  # the two pieces in separate reads, most of the time
        writer.write(whole[-3:])
        assert (await read_response(reader))[0] == 202
        writer.close()
        assert memory.events[-1].id == "3"


async def test_store_full_is_answered_on_the_fast_path() -> None:
    async with serving(True) as (port, memory, front):
        assert front is not None
        memory.full = True
        [(status, headers, body)] = await exchange(port, [binary()])
        assert (status, headers["retry-after"]) == (503, "3")
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == {"error": "the broker's store is full"}
        assert (front.served, front.handed_over) == (1, 0)
    async with serving(False) as (port, memory, _):
        memory.full = True
        [(status2, headers2, body2)] = await exchange(port, [binary()])
        headers.pop("date")
        headers2.pop("date")
        assert (status, headers, body) == (status2, headers2, body2)


async def test_credentials_are_checked_and_refusals_left_to_aiohttp() -> None:
    auth = IngressAuth({"default/default": Rule(frozenset({digest(TOKEN.encode())}))})
    async with serving(True, auth=auth) as (port, memory, front):
        assert front is not None
        good = binary("1", extra=f"Authorization: Bearer {TOKEN}\r\n".encode())
        bad = binary("2", extra=b"Authorization: Bearer wrong\r\n")
        [(status, _, _)] = await exchange(port, [good])
        assert (status, front.served, front.handed_over) == (202, 1, 0)
        answers = await exchange(port, [binary("3"), bad])
        assert [a[0] for a in answers] == [401, 401]
        assert answers[0][1]["www-authenticate"] == 'Bearer realm="default/default"'
        assert [e.id for e in memory.events] == ["1"]


async def test_idle_connections_are_closed() -> None:
    async with serving(True, idle=0.2) as (port, _, front):
        assert front is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(binary())
        assert (await read_response(reader))[0] == 202
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # closed by the sweep, not by us
        writer.close()
        assert not front.connections


async def test_connections_count_against_the_cap() -> None:
    """Fast connections and those handed to aiohttp share the one cap."""
    async with serving(True, cap=2) as (port, _, front):
        assert front is not None
        first = await asyncio.open_connection("127.0.0.1", port)
        first[1].write(binary("1"))
        assert (await read_response(first[0]))[0] == 202
        second = await asyncio.open_connection("127.0.0.1", port)
        second[1].write(CASES["no id"])  # handed to aiohttp: still counted
        assert (await read_response(second[0]))[0] == 400
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, headers, _ = await read_response(reader)
        assert (status, headers["retry-after"]) == (503, "1")
        for _, w in (first, second, (reader, writer)):
            w.close()


EXTRA_LINES = [
    b"ce-extra: value",
    b"X-Anything: 1",
    b"Connection: keep-alive",
    b"Host: y",
    b"Content-Length: 7",
    b"Content-Length: 07",
    b"Content-Length: 0",
    b"Transfer-Encoding: chunked",
    b"Content-Encoding: identity",
    b"Connection: close",
    b"Connection: Keep-Alive",
    b"Expect: 100-continue",
    b"Upgrade: h2c",
    b"Content-Type: application/cloudevents+json",
    b"Content-Type: application/cloudevents-batch+json",
    b"ce-id: two",
    b"ce-time: not a time",
    b"ce-knativebrokerttl: 0",
    b"Authorization: Bearer x",
    b"X-Long: " + b"a" * 9000,
    b" folded",
    b"NoColon",
    b"Bad Name: x",
    b"Empty:",
]
FLIPS = b" :\r\n\t\x00\x7f\x80\xffA0-/%?"


def mutate(rng: random.Random) -> bytes:
    """A valid binary request with one to three random changes to its head, sent
    alone: a head whose one Content-Length no longer matches the body is made again
    (shorter would leave bytes that are a second request; longer, a wait)."""
    while True:
        payload = _mutate_once(rng)
        lengths = re.findall(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r$", payload)
        if len(lengths) != 1 or int(lengths[0]) == 7:
            return payload


def _mutate_once(rng: random.Random) -> bytes:
    body = b'{"a":1}'
    lines = binary(body=body).split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        if choice < 0.4:
            lines.insert(rng.randint(1, len(lines)), rng.choice(EXTRA_LINES))
        elif choice < 0.6 and len(lines) > 1:
            del lines[rng.randint(1, len(lines) - 1)]
        else:
            index = rng.randrange(len(lines))
            line = bytearray(lines[index])
            if line:
                line[rng.randrange(len(line))] = rng.choice(FLIPS)
            lines[index] = bytes(line)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def answer_or_none(port: int, payload: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """The answer, or None when the server closed (or said nothing in 2 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        try:
            async with asyncio.timeout(2):
                status, headers, body = await read_response(reader)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return None
        headers.pop("date", None)
        return status, headers, body
    finally:
        writer.close()


async def test_mutated_requests_get_the_same_answer_as_from_aiohttp() -> None:
    """Random changes to a valid request's head (repeated, missing, folded, badly named
    or encoded headers, other framings): whatever aiohttp alone answers, a worker with
    the fast path in front answers the same, and stores the same events."""
    rng = random.Random(14)
    payloads = [mutate(rng) for _ in range(200)]
    async with (
        serving(True) as (fast_port, fast_memory, front),
        serving(False) as (port, memory, _),
    ):
        for payload in payloads:
            got = await answer_or_none(fast_port, payload)
            expected = await answer_or_none(port, payload)
            assert got == expected, payload
    assert [e.attributes for e in fast_memory.events] == [
        {**e.attributes, "knativearrivaltime": f.attributes["knativearrivaltime"]}
        for e, f in zip(memory.events, fast_memory.events, strict=True)
    ]
    assert front is not None
    assert front.served > 0
    assert front.handed_over > 0


class StubMain(asyncio.Protocol):
    """The main process's end of a worker's socketpair: answers each publish as
    ``answer`` says (an encoded result, or None for no answer at all)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.answer: bytes | None = ipc.OK_RESULT
        self.events: list[Event] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for kind, request_id, payload in ipc.split(self.buffer):
            assert kind == ipc.PUBLISH
            self.events += ipc.decode_publish(payload)[2]
            if self.answer is not None and self.transport is not None:
                self.transport.write(ipc.frame(ipc.RESULT, request_id, self.answer))


async def test_a_workers_remote_broker_is_published_to_without_a_task() -> None:
    """In a worker the broker is a RemoteBroker: the fast path sends the frame and
    answers from the main process's answer (202, 503 full, 503 after the deadline)."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    stub = StubMain()
    channel = _Channel(timeout=0.3)
    await loop.create_connection(lambda: stub, sock=ours)
    await loop.create_connection(lambda: channel, sock=theirs)
    remote = RemoteBroker("default/default", channel)
    ingress = Ingress({remote.key: remote}, Metrics(), IngressSettings())
    server = ingress.server()
    front = FastPath(ingress, server)
    listening = await loop.create_server(front, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        [(status, _, _)] = await exchange(port, [binary("1")])
        assert status == 202
        stub.answer = ipc.encode_result(ipc.FULL, 7.0, "full")
        [(status, headers, body)] = await exchange(port, [binary("2")])
        assert (status, headers["retry-after"]) == (503, "7")
        assert json.loads(body) == {"error": "the broker's store is full"}
        stub.answer = None
        [(status, headers, body)] = await exchange(port, [binary("3")])
        assert (status, headers["retry-after"]) == (503, "1")
        assert json.loads(body) == {"error": "the broker cannot store events now"}
        assert [e.id for e in stub.events] == ["1", "2", "3"]
        assert (front.served, front.handed_over) == (3, 0)
        assert not channel.pending
    finally:
        listening.close()
        await front.shutdown(2.0)
        await server.shutdown(2.0)
        if stub.transport is not None:
            stub.transport.close()
        if channel.transport is not None:
            channel.transport.close()


async def test_header_lines_are_kept_but_never_ids_lengths_or_credentials() -> None:
    """Lines of the head are checked and split once, then looked up: a kept line
    never lets a bad one through, and ids, lengths and credentials are never kept."""
    extra = b"X-Extra: 1\r\nAuthorization: Bearer t\r\n"
    async with serving(True) as (port, memory, front):
        assert front is not None
        answers = await exchange(port, [binary("k1", extra=extra), binary("k2", extra=extra)])
        assert [a[0] for a in answers] == [202, 202]
        assert (front.served, front.handed_over) == (2, 0)
        assert [(e.id, e.source) for e in memory.events] == [("k1", "/t"), ("k2", "/t")]
        assert fastpath._LINES[b"X-Extra: 1"] == (b"x-extra", "X-Extra", "1", False)
        assert b"ce-source: /t" in fastpath._LINES
        kept = b"\n".join(fastpath._LINES)
        assert b"ce-id" not in kept
        assert b"Authorization" not in kept
        assert b"Content-Length" not in kept
        # the same kept lines with one bad line among them: aiohttp answers
        [(status, _, _)] = await exchange(port, [binary("k3", extra=b"X-Extra: 1\x01\r\n")])
        assert status == 400
        assert front.handed_over == 1
