"""A small HTTP/1.1 client for delivery: keep-alive connection pools over asyncio
protocols, one POST at a time per connection.

Why not aiohttp's ``ClientSession`` here: delivery is the broker's hottest path and
needs one thing, a POST with a few headers and a bounded response. aiohttp's client
spends ~145 µs of CPU per request on this machine on generality we do not use
(cookies, redirects, middlewares, tracing hooks); this client spends a fraction of
that (see docs/benchmarks.md), which is the difference between the pipeline reaching
or missing a third of a bare HTTP handler's rate. It speaks only what delivery needs:
``Content-Length`` bodies out; ``Content-Length``, chunked or read-until-close
bodies in; keep-alive unless the server says ``Connection: close``.

A request that fails on a *reused* connection before any byte of the response
arrived is retried once on a fresh connection (the server closed the idle
connection under us; the request never reached the application).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from sinks.hostslots import HostSlots, NoSlotError, Wake

MAX_HEAD = 64 * 1024
SWEEP = 0.05  # seconds between deadline checks


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
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    path: bytes
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs are supported by this client: {url!r}")
        port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
        return cls(parts.hostname, port, path.encode("ascii"), host.encode("idna"))


Done = Callable[[Response | BaseException], None]


class _Connection(asyncio.Protocol):
    def __init__(self, max_body: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.on_done: Done | None = None
        """Called once with the response, or the exception that ended the exchange."""
        self.max_body = max_body
        self.closed = False
        self.reusable = True
        self._head: tuple[int, dict[str, str], int, str] | None = None

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
        self.buffer += data
        if self.on_done is None:
            self.abort()  # unsolicited bytes: this connection is out of sync
            return
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
            self._head = _parse_head(bytes(self.buffer[:end]))
            del self.buffer[: end + 4]
        status, headers, length, mode = self._head
        if mode == "length":
            if length > self.max_body:
                raise HttpError(f"response body of {length} bytes is over the limit")
            if len(self.buffer) >= length:
                body = bytes(self.buffer[:length])
                del self.buffer[:length]
                self._finish(Response(status, headers, body), keep=True)
        elif mode == "chunked":
            chunked = _dechunk(self.buffer, self.max_body)
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


def _parse_head(raw: bytes) -> tuple[int, dict[str, str], int, str]:
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


def _dechunk(buffer: bytearray, limit: int) -> bytes | None:
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


class Pool:
    """Keep-alive connections per (host, port), at most ``limit`` each."""

    def __init__(self, limit: int = 256, max_body: int = 1024 * 1024 + 1) -> None:
        self.max_body = max_body
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._open: dict[tuple[str, int], int] = {}
        self.slots = HostSlots(limit)
        self._tasks: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: dict[_Connection, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def post(
        self, target: Target, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Response:
        """POST and return the response; raises :class:`HttpError`, or ``TimeoutError``
        when no complete response arrived within ``timeout`` seconds."""
        key = (target.host, target.port)
        loop = self.loop()
        deadline = loop.time() + timeout
        try:
            await self.slots.acquire(key, deadline)
        except NoSlotError:
            raise NotSentError("not sent: the process is stopping") from None
        try:
            request = _request_bytes(target, headers, body)
            conn, reused = await self._connection(key, deadline)
            try:
                return await self._exchange(key, conn, request, deadline)
            except HttpError:
                if not reused or conn.buffer:
                    raise
            conn, _ = await self._connection(key, deadline, fresh=True)
            return await self._exchange(key, conn, request, deadline)
        finally:
            self._release(key)

    @property
    def limit(self) -> int:
        """Connections per host, shared by every caller (the triggers of a process)."""
        return self.slots.limit

    def stop_queueing(self) -> None:
        """Shutdown: requests waiting for a connection slot give up now with
        :class:`NotSentError` (nothing of them was sent), and so does any that would
        have to wait from now on; those with a connection finish. With a thousand
        triggers behind a hung subscriber that is thousands of waiting deliveries,
        which would otherwise be cancelled one by one at the drain deadline."""
        self.slots.stop_queueing()

    def full(self, target: Target) -> bool:
        """No connection slot for a new request to ``target``'s host now."""
        return self.slots.full((target.host, target.port))

    def when_free(self, target: Target, wake: Wake) -> bool:
        """After a :meth:`try_post` that sent nothing: queue ``wake`` to be called in
        turn when ``target``'s host has a connection slot (then try again); False
        when the host is not full (the request needs a new connection: use
        :meth:`post`) or the pool stopped queueing."""
        return self.slots.when_free((target.host, target.port), wake)

    async def _exchange(
        self, key: tuple[str, int], conn: _Connection, request: bytes, deadline: float
    ) -> Response:
        # A deadline in the pool's sweep instead of an asyncio.timeout() context or a
        # timer per exchange: this runs for every delivery.
        loop = self.loop()
        waiter: asyncio.Future[Response] = loop.create_future()

        def done(result: Response | BaseException) -> None:
            if waiter.done():
                return
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)

        conn.on_done = done
        self._watch(conn, deadline)
        assert conn.transport is not None
        try:
            conn.transport.write(request)
            response = await waiter
        except BaseException:
            conn.on_done = None
            conn.abort()
            self._forget(key)
            raise
        finally:
            self._deadlines.pop(conn, None)
        self._keep(key, conn)
        return response

    def _keep(self, key: tuple[str, int], conn: _Connection) -> None:
        if conn.reusable and not conn.closed:
            self._idle.setdefault(key, deque()).append(conn)
        else:
            conn.abort()
            self._forget(key)

    def try_post(
        self,
        target: Target,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float,
        done: Done,
    ) -> bool:
        """Send now on an idle keep-alive connection and call ``done`` with the response
        (or the exception) later, without a coroutine or a task; False (nothing sent)
        when that is not possible (no idle connection, or at the limit)."""
        key = (target.host, target.port)
        if self.slots.full(key):
            return False
        idle = self._idle.get(key)
        conn: _Connection | None = None
        while idle:
            candidate = idle.pop()
            if not candidate.closed:
                conn = candidate
                break
            self._forget(key)
        if conn is None or conn.transport is None:
            return False
        self.slots.take(key)
        loop = self.loop()
        request = _request_bytes(target, headers, body)
        deadline = loop.time() + timeout

        def finished(result: Response | BaseException) -> None:
            self._deadlines.pop(conn, None)
            if isinstance(result, StaleConnectionError):
                # The server closed it while idle: send again on a fresh connection,
                # like post() does; the caller still gets exactly one answer.
                self._forget(key)
                self._release(key)
                task = asyncio.ensure_future(self._resend(target, headers, body, deadline, done))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            self._release(key)
            if isinstance(result, BaseException):
                conn.abort()
                self._forget(key)
            else:
                self._keep(key, conn)
            done(result)

        conn.on_done = finished
        self._watch(conn, deadline)
        conn.transport.write(request)
        return True

    async def _resend(
        self,
        target: Target,
        headers: list[tuple[str, str]],
        body: bytes,
        deadline: float,
        done: Done,
    ) -> None:
        result: Response | BaseException = HttpError("the client was closed")
        try:
            result = await self.post(
                target, headers, body, max(0.0, deadline - asyncio.get_running_loop().time())
            )
        except (HttpError, TimeoutError) as exc:
            result = exc
        finally:
            done(result)  # exactly one answer, even when cancelled by close()

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, looked up once: ``asyncio.get_running_loop()`` costs a
        ``getpid`` system call on every call in Python 3.11."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _watch(self, conn: _Connection, deadline: float) -> None:
        """Fail ``conn``'s exchange with TimeoutError once ``deadline`` passes, checked
        by a sweep every 50 ms (delivery timeouts are seconds; a timer per request cost
        a libuv timer start and stop on the hot path)."""
        self._deadlines[conn] = deadline
        if self._sweeper is None:
            self._sweeper = self.loop().call_later(SWEEP, self._sweep)

    def _sweep(self) -> None:
        loop = self.loop()
        now = loop.time()
        expired = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
        for conn in expired:
            del self._deadlines[conn]
            conn.fail(TimeoutError())
            conn.abort()
        self._sweeper = loop.call_later(SWEEP, self._sweep) if self._deadlines else None

    def _release(self, key: tuple[str, int]) -> None:
        self.slots.release(key)

    async def _connection(
        self, key: tuple[str, int], deadline: float, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        idle = self._idle.get(key)
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
            self._forget(key)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(lambda: _Connection(self.max_body), *key)
        except OSError as exc:
            raise HttpError(f"cannot connect to {key[0]}:{key[1]}: {exc.strerror or exc}") from None
        self._open[key] = self._open.get(key, 0) + 1
        return conn, False

    def _forget(self, key: tuple[str, int]) -> None:
        self._open[key] = max(0, self._open.get(key, 0) - 1)

    def close(self) -> None:
        self.stop_queueing()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._deadlines):  # exchanges on the wire: answered, then cut
            conn.fail(HttpError("the client was closed"))
            conn.abort()
        self._deadlines.clear()
        for task in self._tasks:
            task.cancel()
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()
        self._idle.clear()


def _request_bytes(target: Target, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = [
        b"POST ",
        target.path,
        b" HTTP/1.1\r\nHost: ",
        target.host_header,
        b"\r\nContent-Length: ",
        str(len(body)).encode(),
        b"\r\n",
    ]
    for name, value in headers:
        head.append(f"{name}: {value}\r\n".encode())
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head)
