"""One keep-alive HTTP/1.1 client connection of :mod:`sinks.httpclient`: the asyncio
protocol and the response parser, with a fast path for the response every delivery
gets.

The parser speaks what delivery needs: ``Content-Length``, chunked or
read-until-close bodies; keep-alive unless the server says ``Connection: close``.

The fast path (:class:`KnownHeads`): a subscriber answers thousands of deliveries
with byte-identical heads (``HTTP/1.1 202 Accepted``, ``Content-Length: 0``, perhaps a
``Date`` that changes once a second). The full parser's result for a head is a
function of its bytes alone, so a head seen before is looked up instead of parsed
again: splitting lines, lower-casing names and building a dict was most of the CPU
of reading a response. Only heads of keep-alive ``2xx`` responses with a
``Content-Length`` are kept, at most :data:`KNOWN_MAX` of them (forgotten all at once
when full, so a server that varies its heads costs a lookup, not memory); anything
else, and any response that does not arrive in one read, goes the full way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

MAX_HEAD = 64 * 1024
KNOWN_MAX = 64
"""Distinct response heads remembered per pool."""
KNOWN_HEAD_BYTES = 1024
"""Longer heads are never remembered."""


class HttpError(Exception):
    """A connection-level failure: nothing usable came back."""


class NotSentError(HttpError):
    """Nothing of the request was sent (the pool stopped queueing at shutdown)."""


class StaleConnectionError(HttpError):
    """The connection closed before any byte of the response: on a reused keep-alive
    connection, the server had closed it while idle and never saw the request."""

    def __init__(self, got: str) -> None:
        super().__init__(f"connection closed {got}")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ", ". Shared between responses
    with the same head (the fast path): read it, never change it."""
    body: bytes


Done = Callable[[Response | BaseException], None]
Head = tuple[int, dict[str, str], int, str]
"""status, headers, body length, and how the body ends: length, chunked or close."""


class KnownHeads:
    """Parsed heads of ordinary responses by their exact bytes (CRLF CRLF included)."""

    def __init__(self) -> None:
        self.heads: dict[bytes, Head] = {}
        self.empty: dict[bytes, Response] = {}
        """Whole responses without a body, by their bytes: nothing to build at all."""

    def remember(self, raw: bytes, head: Head) -> None:
        status, headers, _, mode = head
        if (
            mode != "length"
            or head[2] < 0
            or not 200 <= status < 300
            or len(raw) > KNOWN_HEAD_BYTES
            or headers.get("connection", "").lower() == "close"
        ):
            return
        if len(self.heads) >= KNOWN_MAX:
            self.heads.clear()
            self.empty.clear()
        self.heads[raw] = head
        if head[2] == 0:
            self.empty[raw] = Response(status, headers, b"")


class Connection(asyncio.Protocol):
    __slots__ = (
        "_head",
        "buffer",
        "closed",
        "known",
        "max_body",
        "on_done",
        "reusable",
        "transport",
    )

    def __init__(self, max_body: int, known: KnownHeads | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.on_done: Done | None = None
        """Called once with the response, or the exception that ended the exchange."""
        self.max_body = max_body
        self.closed = False
        self.reusable = True
        self.known = known
        self._head: Head | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.on_done is None:
            return
        if self._head is not None and self._head[3] == "close":
            status, headers, _, _ = self._head
            self._finish(Response(status, headers, bytes(self.buffer)), keep=False)
            return
        got = "after a partial response" if self._head or self.buffer else "before a response"
        self.fail(
            StaleConnectionError(got)
            if not (self._head or self.buffer)
            else HttpError(f"connection closed {got}")
        )

    def data_received(self, data: bytes) -> None:
        done = self.on_done
        if done is None:
            self.abort()  # unsolicited bytes: this connection is out of sync
            return
        known = self.known
        if known is not None and self._head is None and not self.buffer:
            # The fast path: a whole response in one read, its head seen before.
            response = known.empty.get(data)
            if response is not None:
                self.on_done = None
                done(response)
                return
            end = data.find(b"\r\n\r\n", 0, KNOWN_HEAD_BYTES) + 4
            head = known.heads.get(data[:end]) if end >= 4 else None
            if head is not None and head[2] == len(data) - end and head[2] <= self.max_body:
                self.on_done = None
                done(Response(head[0], head[1], data[end:]))
                return
        self.buffer += data
        try:
            self._parse()
        except HttpError as exc:
            self.fail(exc)
            self.abort()

    def fail(self, exc: BaseException) -> None:
        done, self.on_done = self.on_done, None
        if done is not None:
            done(exc)

    def _parse(self) -> None:
        if self._head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise HttpError("response head too large")
                return
            raw = bytes(self.buffer[: end + 4])
            self._head = parse_head(raw[:-4])
            del self.buffer[: end + 4]
            if self.known is not None:
                self.known.remember(raw, self._head)
        status, headers, length, mode = self._head
        if mode == "length":
            if length > self.max_body:
                raise HttpError(f"response body of {length} bytes is over the limit")
            if len(self.buffer) >= length:
                body = bytes(self.buffer[:length])
                del self.buffer[:length]
                self._finish(Response(status, headers, body), keep=True)
        elif mode == "chunked":
            chunked = dechunk(self.buffer, self.max_body)
            if chunked is not None:
                self._finish(Response(status, headers, chunked), keep=True)
        elif len(self.buffer) > self.max_body:  # read until close
            raise HttpError("response body over the limit")

    def _finish(self, response: Response, keep: bool) -> None:
        if response.headers.get("connection", "").lower() == "close" or not keep:
            self.reusable = False
        self._head = None
        if self.buffer:
            self.reusable = False
        done, self.on_done = self.on_done, None
        if done is not None:
            done(response)

    def abort(self) -> None:
        self.reusable = False
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def parse_head(raw: bytes) -> Head:
    """The full parser, for a head without its final CRLF CRLF."""
    lines = raw.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise HttpError("malformed status line")
    try:
        status = int(status_line[1])
    except ValueError:
        raise HttpError("malformed status code") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HttpError("malformed header line")
        key = name.strip().lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if status < 200 or status in (204, 304):
        return status, headers, 0, "length"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, 0, "chunked"
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise HttpError("malformed Content-Length") from None
        return status, headers, length, "length"
    return status, headers, 0, "close"


def dechunk(buffer: bytearray, limit: int) -> bytes | None:
    """The body if the chunked encoding in ``buffer`` is complete (consumed), else None."""
    out = bytearray()
    pos = 0
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
        except ValueError:
            raise HttpError("malformed chunk size") from None
        if size == 0:
            end = buffer.find(b"\r\n\r\n", line_end)  # optional trailers, then a blank line
            if end < 0:
                return None
            del buffer[: end + 4]
            return bytes(out)
        start = line_end + 2
        if len(buffer) < start + size + 2:
            return None
        out += buffer[start : start + size]
        if len(out) > limit:
            raise HttpError("response body over the limit")
        pos = start + size + 2
