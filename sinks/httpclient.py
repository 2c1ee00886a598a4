"""A small HTTP/1.1 client for delivery: keep-alive connection pools over asyncio
protocols, one POST at a time per connection.

Why not aiohttp's ``ClientSession`` here: delivery is the broker's hottest path and
needs one thing, a POST with a few headers and a bounded response. aiohttp's client
spends ~145 µs of CPU per request on this machine on generality we do not use
(cookies, redirects, middlewares, tracing hooks); this client spends a fraction of
that (see docs/benchmarks.md), which is the difference between the pipeline reaching
or missing a third of a bare HTTP handler's rate. The connection and its response
parser are :mod:`sinks.httpconn`.

Callers that send many requests with the same headers hand over their header lines
as bytes (:meth:`Pool.try_post_head`): the request's head is then one formatting of
the target's request line, ``Host`` and fixed lines, those lines and
``Content-Length``, written with the body in one call that does not copy the body
(on uvloop one ``writev``).

A request that fails on a *reused* connection before any byte of the response
arrived is retried once on a fresh connection (the server closed the idle
connection under us; the request never reached the application).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from sinks.hostslots import HostSlots, NoSlotError, Wake
from sinks.httpconn import (
    Connection,
    Done,
    HttpError,
    KnownHeads,
    NotSentError,
    Response,
    StaleConnectionError,
)

__all__ = ["Done", "HttpError", "NotSentError", "Pool", "Response", "Target", "header_lines"]

SWEEP = 0.05  # seconds between deadline checks

Request = tuple[bytes, bytes]
"""A request as written: its head (request line to the blank line) and its body."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    path: bytes
    host_header: bytes
    fixed: bytes = b""
    """Header lines (each ending CRLF) sent with every request to this target."""
    start: bytes = field(init=False, repr=False, compare=False)
    """``POST path HTTP/1.1``, the ``Host`` line and :attr:`fixed`: made once."""
    key: tuple[str, int] = field(init=False, repr=False, compare=False)
    """``(host, port)``: the pool's key for its connections and slots, made once
    (a tuple built two or three times per request otherwise)."""

    def __post_init__(self) -> None:
        start = b"POST %s HTTP/1.1\r\nHost: %s\r\n%s" % (self.path, self.host_header, self.fixed)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "key", (self.host, self.port))

    def with_fixed(self, lines: bytes) -> Target:
        """This target with ``lines`` sent in every request (same host, same pool slots)."""
        return replace(self, fixed=lines)

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs are supported by this client: {url!r}")
        port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
        return cls(parts.hostname, port, path.encode("ascii"), host.encode("idna"))


def header_lines(headers: Iterable[tuple[str, str]]) -> bytes:
    """``Name: value`` CRLF lines of ``headers`` (values UTF-8)."""
    return "".join([f"{name}: {value}\r\n" for name, value in headers]).encode()


def request(target: Target, head: bytes, body: bytes) -> Request:
    """The request: ``head`` is its header lines but ``Host`` and ``Content-Length``."""
    return b"%s%sContent-Length: %d\r\n\r\n" % (target.start, head, len(body)), body


def _write(transport: asyncio.Transport, data: Request) -> None:
    """One call, and on uvloop one ``writev``: the body is not copied behind the head
    (measured: no dearer than joining them for a 1 KiB body, bench_send.py)."""
    transport.writelines(data)


class Pool:
    """Keep-alive connections per (host, port), at most ``limit`` each."""

    def __init__(self, limit: int = 256, max_body: int = 1024 * 1024 + 1) -> None:
        self.max_body = max_body
        self._idle: dict[tuple[str, int], deque[Connection]] = {}
        self._open: dict[tuple[str, int], int] = {}
        self.slots = HostSlots(limit)
        self._tasks: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: dict[Connection, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._known = KnownHeads()

    async def post(
        self, target: Target, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Response:
        """POST and return the response; raises :class:`HttpError`, or ``TimeoutError``
        when no complete response arrived within ``timeout`` seconds."""
        return await self.post_head(target, header_lines(headers), body, timeout)

    async def post_head(self, target: Target, head: bytes, body: bytes, timeout: float) -> Response:
        """:meth:`post` with the header lines as bytes (see :func:`header_lines`)."""
        return await self._post(target, request(target, head, body), timeout)

    async def _post(self, target: Target, data: Request, timeout: float) -> Response:
        key = target.key
        loop = self.loop()
        deadline = loop.time() + timeout
        try:
            await self.slots.acquire(key, deadline)
        except NoSlotError:
            raise NotSentError("not sent: the process is stopping") from None
        try:
            conn, reused = await self._connection(key, deadline)
            try:
                return await self._exchange(key, conn, data, deadline)
            except HttpError:
                if not reused or conn.buffer:
                    raise
            conn, _ = await self._connection(key, deadline, fresh=True)
            return await self._exchange(key, conn, data, deadline)
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
        return self.slots.full(target.key)

    def when_free(self, target: Target, wake: Wake) -> bool:
        """After a :meth:`try_post` that sent nothing: queue ``wake`` to be called in
        turn when ``target``'s host has a connection slot (then try again); False
        when the host is not full (the request needs a new connection: use
        :meth:`post`) or the pool stopped queueing."""
        return self.slots.when_free(target.key, wake)

    async def _exchange(
        self, key: tuple[str, int], conn: Connection, data: Request, deadline: float
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
            _write(conn.transport, data)
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

    def _keep(self, key: tuple[str, int], conn: Connection) -> None:
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
        return self.try_post_head(target, header_lines(headers), body, timeout, done)

    def try_post_head(
        self, target: Target, head: bytes, body: bytes, timeout: float, done: Done
    ) -> bool:
        """:meth:`try_post` with the header lines as bytes (see :func:`header_lines`)."""
        conn = self.idle_connection(target)
        if conn is None:
            return False
        self.post_on(conn, target, head, body, timeout, done)
        return True

    def idle_connection(self, target: Target) -> Connection | None:
        """The delivery fast path, first half: an idle keep-alive connection to
        ``target``'s host that a new request may use now (its host has a slot for a
        newcomer), taken out of the pool; None if there is none. The caller must hand
        it to :meth:`post_on` in the same synchronous step (the slot is counted there,
        without a second check: nothing can take it in between)."""
        key = target.key
        if self.slots.full(key):
            return None
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn if conn.transport is not None else None
            self._forget(key)
        return None

    def give_back(self, target: Target, conn: Connection) -> None:
        """An idle connection taken by :meth:`idle_connection` and not used."""
        self._keep(target.key, conn)

    def post_on(
        self, conn: Connection, target: Target, head: bytes, body: bytes, timeout: float, done: Done
    ) -> None:
        """The second half: send on ``conn`` (from :meth:`idle_connection`), holding
        one of the host's slots until the exchange ends, and call ``done`` with the
        response (or the exception) later, without a coroutine or a task."""
        key = target.key
        self.slots.taken(key)
        data = request(target, head, body)
        deadline = self.loop().time() + timeout

        def finished(result: Response | BaseException) -> None:
            self._deadlines.pop(conn, None)
            if isinstance(result, StaleConnectionError):
                # The server closed it while idle: send again on a fresh connection,
                # like post() does; the caller still gets exactly one answer.
                self._forget(key)
                self._release(key)
                task = asyncio.ensure_future(self._resend(target, data, deadline, done))
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
        assert conn.transport is not None
        _write(conn.transport, data)

    async def _resend(self, target: Target, data: Request, deadline: float, done: Done) -> None:
        result: Response | BaseException = HttpError("the client was closed")
        try:
            result = await self._post(
                target, data, max(0.0, deadline - asyncio.get_running_loop().time())
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

    def _watch(self, conn: Connection, deadline: float) -> None:
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
    ) -> tuple[Connection, bool]:
        idle = self._idle.get(key)
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
            self._forget(key)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: Connection(self.max_body, self._known), *key
                )
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
