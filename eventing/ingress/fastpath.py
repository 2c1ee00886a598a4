"""A lean front for the hot ingress request, with aiohttp behind it for everything else.

Why: in an ingress worker, aiohttp's request machinery (the request object, the payload
stream, the response object and its preparation) cost about as much CPU per event as
everything else the worker does, and the worker shares a 2-core machine with the main
process. Almost every request on a busy broker is the same simple thing: a
``POST /<namespace>/<broker>`` over HTTP/1.1 keep-alive with a ``Content-Length`` body
that arrived whole, one event in binary or structured mode, answered ``202``.

So each connection starts here. A request is served here only when all of this holds
when its bytes are looked at; anything else (another method or path, a partial head or
body, chunked or encoded bodies, ``Expect``, ``Connection: close``, HTTP/1.0, no
``Host``, a header sent twice or not plain visible ASCII, a batch, an event that does
not decode, a credential the rules refuse, a shutdown in progress) hands the
connection, with every byte not yet answered, to aiohttp's handler, which answers as it
always did (the same :class:`~eventing.ingress.server.Ingress` code), and keeps the
connection from then on.
Nothing is done before that decision that would have to be undone: the checks are
pure, and only an event that passed them all is published. What follows the publish
(202, or 503 when the store refuses) is answered here with the headers aiohttp sends.

One difference a client can see, only with pipelining: when a request served here is
followed in the same read by bytes that are no request, it is answered (202) before
aiohttp answers the rest (400); aiohttp alone answers 400 at once and leaves the first
unanswered.

Bounds kept: the head is at most :data:`MAX_HEAD` bytes here (longer ones go to
aiohttp, whose limits answer them), the body at most ``max_body_bytes``, connections
count against the same cap as aiohttp's, and a connection idle for ``idle_timeout``
(no request since it opened or since the last answer) is closed by a sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Final, cast

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from eventing import stages
from eventing.broker.base import Publisher
from eventing.broker.stamps import now_rfc3339, stamp
from eventing.codec import http as binding
from eventing.codec.jsonformat import parse_structured
from eventing.connections import GuardedServer
from eventing.errors import InvalidEventError, StoreError
from eventing.events import Event
from eventing.ingress.server import Ingress, error

logger = logging.getLogger(__name__)

MAX_HEAD: Final = 8190
"""Longest request head served here (aiohttp's line limit); longer ones go to aiohttp."""
MAX_HEADERS: Final = 100
PAUSE_AT: Final = 256 * 1024
"""Bytes buffered behind a request in flight before reading pauses."""

_SERVER: Final = SERVER_SOFTWARE.encode("ascii")
_TOKEN: Final = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NOT_PLAIN: Final = re.compile(rb"[^\t\x20-\x7e]")
"""Anything but visible ASCII, space and tab in a line of the head (a CR or LF there
is one not part of the CRLF the head was split on)."""
_LINES_KEPT: Final = 1024
_KEEP_LINE: Final = 256
_PER_REQUEST: Final = frozenset(
    {b"ce-id", b"ce-time", b"ce-traceparent", b"ce-tracestate", b"traceparent", b"tracestate",
     b"authorization", b"content-length"}
)  # fmt: skip
"""Header lines new with nearly every request, or credentials: never kept."""
_LINES: dict[bytes, tuple[bytes, str, str, bool]] = {}
"""Header lines seen before (bounded: emptied when full) -> (lowercased name, name,
value, whether :meth:`_Fields.take` reads it): the head's lines of one client's
requests repeat but for an id or a time, so each is checked and split once, not per
request."""
_HANDED_TO_AIOHTTP: Final = frozenset(
    {b"transfer-encoding", b"content-encoding", b"expect", b"upgrade", b"sec-websocket-key1"}
)


class _Date:
    """The ``Date`` header's value, formatted once a second (as aiohttp does), and the
    whole ``202`` answer with it."""

    second = -1
    value = b""
    accepted = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.value = formatdate(second, usegmt=True).encode("ascii")
            cls.accepted = (
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nDate: "
                + cls.value
                + b"\r\nServer: "
                + _SERVER
                + b"\r\n\r\n"
            )
            cls.second = second
        return cls.value


def _accepted() -> bytes:
    _Date.now()
    return _Date.accepted


def _serialize(response: web.Response) -> bytes:
    """An aiohttp response with a body, as aiohttp would write it (HTTP/1.1)."""
    body = response.body if isinstance(response.body, bytes) else b""
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}".encode("ascii")]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in response.headers.items()]
    lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    lines.append(b"Date: " + _Date.now())
    lines.append(b"Server: " + _SERVER)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Fields:
    """What the fast path reads from the headers."""

    __slots__ = ("authorization", "content_type", "length")

    READ: Final = frozenset(
        {b"content-length", b"connection", b"content-type", b"authorization"} | _HANDED_TO_AIOHTTP
    )
    """The names :meth:`take` looks at (it takes any other as it is)."""

    def __init__(self) -> None:
        self.length: int | None = None
        self.content_type: str | None = None
        self.authorization: str | None = None

    def take(self, name: bytes, value: str) -> bool:
        """False for a header this path leaves to aiohttp (each name comes once)."""
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:  # int() refuses 4,300+ digits
                return False
            if len(value) > 1 and value[0] == "0":
                return False
            self.length = int(value)
        elif name in _HANDED_TO_AIOHTTP:
            return False
        elif name == b"connection":
            return value.lower() == "keep-alive"
        elif name == b"content-type":
            self.content_type = value
        elif name == b"authorization":
            self.authorization = value
        return True


def _header_line(line: bytes) -> tuple[bytes, str, str, bool] | None:
    """(lowercased name, name, value, read by :meth:`_Fields.take`) of a plain
    ``Name: value`` header line; None for anything this path leaves to aiohttp."""
    if _NOT_PLAIN.search(line) is not None:
        return None
    raw_name, colon, raw_value = line.partition(b":")
    if not colon or not raw_name or raw_name.strip(_TOKEN):
        return None
    name = raw_name.lower()
    value = raw_value.strip(b" \t").decode("ascii")
    return name, raw_name.decode("ascii"), value, name in _Fields.READ


class FastPath:
    """The protocol factory for the listening socket (see the module docstring)."""

    def __init__(self, ingress: Ingress, server: GuardedServer) -> None:
        self.ingress = ingress
        self.server = server
        self.routes: dict[bytes, Publisher] = {
            f"/{key}".encode(): broker
            for key, broker in ingress.brokers.items()
            if f"/{key}" not in ingress.webhooks and f"/{key}".isascii()
        }
        self.connections: set[FastConnection] = set()
        self.closing = False
        self.served = 0
        """Requests answered here (the rest went to aiohttp)."""
        self.handed_over = 0
        """Connections handed to aiohttp."""
        self._sweeper: asyncio.TimerHandle | None = None
        self._empty = asyncio.Event()

    def forget(self, connection: FastConnection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._empty.set()

    def __call__(self) -> FastConnection:
        return FastConnection(self)

    def added(self, connection: FastConnection) -> bool:
        """Count a new connection against the cap; False when it must be refused."""
        if len(self.connections) + self.server.open_connections() >= self.server.max_connections:
            return False
        self.connections.add(connection)
        self._empty.clear()
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._every(), self._sweep)
        return True

    def _every(self) -> float:
        return max(0.05, min(1.0, self.server.idle_timeout / 4))

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() - self.server.idle_timeout
        for connection in list(self.connections):
            if not connection.busy and connection.idle_since <= deadline:
                connection.close()
        self._sweeper = loop.call_later(self._every(), self._sweep) if self.connections else None

    async def shutdown(self, timeout: float) -> None:
        """Close idle connections now and the others once their request is answered,
        waiting at most ``timeout`` seconds."""
        self.closing = True
        for connection in list(self.connections):
            if not connection.busy:
                connection.close()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._empty.wait()
        for connection in list(self.connections):
            connection.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


class FastConnection(asyncio.Protocol):
    """One client connection while it is served here."""

    def __init__(self, owner: FastPath) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.paused = False
        self.idle_since = 0.0
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[None] | None = None
        """The request being answered (kept: the loop holds tasks only weakly)."""

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)
        self.idle_since = self.loop.time()
        if not self.owner.added(self):
            self.owner.server.refuse(transport)
            return
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.owner.forget(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.owner.forget(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.busy:
            if len(self.buffer) > PAUSE_AT and self.transport is not None:
                self.transport.pause_reading()
                self.paused = True
            return
        self._next()

    def _next(self) -> None:
        """Serve the buffered request here, or hand the connection to aiohttp."""
        if not self.buffer or self.transport is None:
            return
        started = self._start()
        if not started:
            self._hand_over()

    def _hand_over(self) -> None:
        transport = self.transport
        if transport is None:
            return
        self.owner.forget(self)
        self.owner.handed_over += 1
        self.transport = None
        handler = self.owner.server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self.paused:
            transport.resume_reading()
        pending, self.buffer = bytes(self.buffer), bytearray()
        handler.data_received(pending)

    def _start(self) -> bool:
        """Take one whole request from the buffer and start serving it; False (nothing
        taken) when it is not one this path serves."""
        ingress = self.owner.ingress
        if self.owner.closing or not ingress.accepting:
            return False
        parsed = self._parse()
        if parsed is None:
            return False
        broker, headers, fields, body_at, total = parsed
        if ingress.auth and ingress.auth.check(broker.key, fields.authorization)[0] != 0:
            return False
        body = bytes(self.buffer[body_at:total])
        content_type = fields.content_type
        try:
            mode = binding.detect_mode(content_type)
            if mode is binding.Mode.BATCH:
                return False
            if mode is binding.Mode.STRUCTURED:
                event = parse_structured(body)
            else:
                event = binding.decode_binary(headers, content_type, body)
            stamp(event, now_rfc3339())
        except InvalidEventError:
            return False
        del self.buffer[:total]
        if stages.ON:
            stages.mark("ingress received", event)
        self.busy = True
        publish_soon = getattr(broker, "publish_soon", None)
        if publish_soon is None:
            self.task = self.loop.create_task(self._publish(broker, event, mode.value))
            return True
        done = partial(self._stored, broker, event, mode.value)
        try:
            publish_soon([event], done)  # an ingress worker's broker: no task per request
        except StoreError as exc:  # answered from the loop: never recursively from here
            self.loop.call_soon(done, exc)
        return True

    def _parse(self) -> tuple[Publisher, list[tuple[str, str]], _Fields, int, int] | None:
        """The broker, headers, the fields read from them, where the body starts and
        where the request ends, for a whole plain request in the buffer; else None."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
        if end < 0:
            return None
        lines = bytes(buffer[:end]).split(b"\r\n")
        request_line = lines[0]
        if (
            len(lines) > MAX_HEADERS + 1
            or not request_line.startswith(b"POST ")
            or not request_line.endswith(b" HTTP/1.1")
            or _NOT_PLAIN.search(request_line) is not None
        ):
            return None
        broker = self.owner.routes.get(request_line[5:-9])
        if broker is None:
            return None
        headers: list[tuple[str, str]] = []
        fields = _Fields()
        seen: set[bytes] = set()
        known = _LINES
        for line in lines[1:]:
            header = known.get(line)
            if header is None:
                header = _header_line(line)
                if header is None:
                    return None
                if len(line) <= _KEEP_LINE and header[0] not in _PER_REQUEST:
                    if len(known) >= _LINES_KEPT:
                        known.clear()
                    known[line] = header
            name = header[0]
            if name in seen:  # aiohttp refuses some repeated headers: let it decide
                return None
            seen.add(name)
            if header[3] and not fields.take(name, header[2]):
                return None
            headers.append((header[1], header[2]))
        if b"host" not in seen:  # aiohttp refuses an HTTP/1.1 request without one
            return None
        length = fields.length
        if length is None or length > self.owner.ingress.settings.max_body_bytes:
            return None
        total = end + 4 + length
        if len(buffer) < total:
            return None
        return broker, headers, fields, end + 4, total

    async def _publish(self, broker: Publisher, event: Event, mode: str) -> None:
        try:
            await broker.publish([event])
        except StoreError as exc:
            self._stored(broker, event, mode, exc)
        except Exception:  # a bug: still one answer (aiohttp's path would answer 500)
            logger.exception("ingress fast path failed")
            self._finish(_serialize(error(500, "internal error")))
        else:
            self._stored(broker, event, mode, None)

    def _stored(
        self, broker: Publisher, event: Event, mode: str, refusal: StoreError | None
    ) -> None:
        ingress = self.owner.ingress
        try:
            if refusal is None:
                ingress.count_received(broker.key, mode)
                if stages.ON:
                    stages.mark("ingress answers 202", event)
                answer = _accepted()
            else:
                answer = _serialize(ingress.refused(broker, refusal))
        except Exception:  # a bug: still one answer
            logger.exception("ingress fast path failed")
            answer = _serialize(error(500, "internal error"))
        self._finish(answer)

    def _finish(self, answer: bytes) -> None:
        self.owner.served += 1
        self.busy = False
        self.task = None
        self.idle_since = self.loop.time()
        if self.transport is None:
            return
        self.transport.write(answer)
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        if self.owner.closing:
            self.close()
            return
        self._next()
