"""The lean delivery client against a real loopback server that misbehaves on purpose:
keep-alive connections closed while idle, chunked and read-until-close bodies,
Connection: close, slow answers, oversized responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from sinks.httpclient import HttpError, Pool, Response, Target

Reply = Callable[[bytes], bytes]


class Server:
    """Answers each request with ``reply(request_bytes)``; may close after answering."""

    def __init__(self, reply: Reply, close_after: bool = False, delay: float = 0.0) -> None:
        self.reply = reply
        self.close_after = close_after
        self.delay = delay
        self.requests = 0
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.handlers: list[tuple[asyncio.Task[None], asyncio.StreamWriter]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.append((task, writer))
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(self.reply(head + body))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/events"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task, writer in self.handlers:
            writer.close()  # idle keep-alive connections too
            task.cancel()
        await asyncio.gather(*(task for task, _ in self.handlers), return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()


def fixed(response: bytes) -> Reply:
    return lambda request: response


ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    p = Pool()
    yield p
    p.close()


async def serve(reply: Reply, **kwargs: float | bool) -> tuple[Server, Target]:
    server = Server(reply, **kwargs)  # type: ignore[arg-type]
    return server, Target.parse(await server.start())


async def test_keep_alive_reuses_one_connection(pool: Pool) -> None:
    server, target = await serve(fixed(ACCEPTED))
    try:
        for _ in range(5):
            response = await pool.post(target, [("ce-id", "1")], b"{}", 5)
            assert response.status == 202
        assert server.connections == 1
        assert server.requests == 5
    finally:
        await server.stop()


async def test_connection_closed_while_idle_is_retried_on_a_fresh_one(pool: Pool) -> None:
    # The server closes after each answer without saying so: a request on the pooled
    # connection finds it closed and must go out again on a new one, on both paths.
    server, target = await serve(fixed(ACCEPTED), close_after=True)
    try:
        assert (await pool.post(target, [], b"a", 5)).status == 202
        assert (await pool.post(target, [], b"b", 5)).status == 202
        answers: asyncio.Queue[Response | BaseException] = asyncio.Queue()
        if not pool.try_post(target, [], b"c", 5, answers.put_nowait):
            answers.put_nowait(await pool.post(target, [], b"c", 5))
        answer = await asyncio.wait_for(answers.get(), 5)
        assert isinstance(answer, Response)
        assert answer.status == 202
        assert server.requests == 3
    finally:
        await server.stop()


async def test_try_post_calls_back_once_with_the_response(pool: Pool) -> None:
    server, target = await serve(fixed(ACCEPTED))
    try:
        assert not pool.try_post(target, [], b"x", 5, print)  # nothing pooled yet
        await pool.post(target, [], b"warm", 5)
        answers: asyncio.Queue[Response | BaseException] = asyncio.Queue()
        assert pool.try_post(target, [("a", "b")], b"x", 5, answers.put_nowait)
        answer = await asyncio.wait_for(answers.get(), 5)
        assert isinstance(answer, Response)
        assert answer.status == 202
        assert answers.empty()
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (CHUNKED + b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", b"hello"),
        (CHUNKED + b"5;ext=1\r\nhello\r\n0\r\nX: y\r\n\r\n", b"hello"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
async def test_bodies(pool: Pool, raw: bytes, body: bytes) -> None:
    server, target = await serve(fixed(raw))
    try:
        response = await pool.post(target, [], b"", 5)
        assert response.body == body
    finally:
        await server.stop()


async def test_read_until_close_body(pool: Pool) -> None:
    server, target = await serve(fixed(b"HTTP/1.1 200 OK\r\n\r\nuntil close"), close_after=True)
    try:
        assert (await pool.post(target, [], b"", 5)).body == b"until close"
    finally:
        await server.stop()


async def test_timeout(pool: Pool) -> None:
    server, target = await serve(fixed(ACCEPTED), delay=5.0)
    try:
        with pytest.raises(TimeoutError):
            await pool.post(target, [], b"", 0.05)
    finally:
        await server.stop()


async def test_oversized_and_malformed_responses_are_errors() -> None:
    small = Pool(max_body=10)
    big, target = await serve(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100))
    bad, bad_target = await serve(fixed(b"SMTP ready\r\n\r\n"))
    try:
        with pytest.raises(HttpError, match="over the limit"):
            await small.post(target, [], b"", 5)
        with pytest.raises(HttpError, match="status line"):
            await small.post(bad_target, [], b"", 5)
    finally:
        small.close()
        await big.stop()
        await bad.stop()


async def test_connection_refused_is_an_http_error(pool: Pool) -> None:
    server, target = await serve(fixed(ACCEPTED))
    await server.stop()
    with pytest.raises(HttpError, match="cannot connect"):
        await pool.post(target, [], b"", 5)
