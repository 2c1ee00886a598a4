"""Small HTTP servers the pipeline benchmark runs as separate processes.

``bare PORT``: the baseline, a bare aiohttp POST handler that reads the body and
answers 202 (what any HTTP ingress costs at minimum).
``subscriber PORT``: counts delivered events and records, from the ``ce-sentat``
extension the load generator stamps, how long each took from send to delivery
(aiohttp, like a typical Python service).
``fastest PORT``: the second baseline, the fastest bare Python HTTP server we could
build here: uvloop and httptools (llhttp, in C) behind a raw asyncio protocol, reading
the body and answering 202 (keep-alive; needs the ``bench`` extra).
``lean PORT``: the same subscriber on a raw asyncio protocol: a fast service, so the
2-core machine's CPU goes to the system under test rather than to its subscriber.
``flaky PORT``: the lean subscriber answering 500 to the first attempt of every event
id and 202 to the next (counted), for the retry-heavy bench (``bench_retries.py``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import ClassVar, cast

from aiohttp import web


def bare(port: int) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return app


def subscriber(port: int) -> web.Application:
    state = {"count": 0, "first": 0.0, "last": 0.0}
    latencies: list[float] = []

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        now = time.time()
        if state["count"] == 0:
            state["first"] = now
        state["count"] += 1
        state["last"] = now
        sent = request.headers.get("ce-sentat")
        if sent is not None:
            latencies.append(now - float(sent))
        return web.Response(status=202)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({**state, "latencies": latencies})

    async def reset(_: web.Request) -> web.Response:
        state.update(count=0, first=0.0, last=0.0)
        latencies.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    app.router.add_post("/{tail:.*}", receive)
    return app


class _Lean(asyncio.Protocol):
    """A minimal HTTP/1.1 responder: 202 to every POST; GET /stats; POST /reset."""

    state: ClassVar[dict[str, float]] = {"count": 0, "first": 0.0, "last": 0.0}
    latencies: ClassVar[list[float]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            sent = None
            event_id = ""
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "ce-sentat":
                    sent = float(value)
                elif name == "ce-id":
                    event_id = value.strip()
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self._answer(head.split(" ", 2)[:2], sent, event_id)

    def _answer(self, request_line: list[str], sent: float | None, event_id: str) -> None:
        method, path = request_line
        if method == "GET":
            body = json.dumps({**self.state, "latencies": self.latencies}).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return
        if path == "/reset":
            self.state.update(count=0, first=0.0, last=0.0)
            self.latencies.clear()
        else:
            now = time.time()
            if self.state["count"] == 0:
                self.state["first"] = now
            self.state["count"] += 1
            self.state["last"] = now
            if sent is not None:
                self.latencies.append(now - sent)
        self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


class _Flaky(_Lean):
    """The lean subscriber failing the first attempt of every event id (500: an error,
    not the overload signal 503 or 429, which would halve the adaptive limit)."""

    failed: ClassVar[set[str]] = set()

    def _answer(self, request_line: list[str], sent: float | None, event_id: str) -> None:
        if request_line[0] == "POST" and request_line[1] != "/reset":
            if event_id not in self.failed:
                self.failed.add(event_id)
                self.transport.write(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
                )
                return
            self.failed.discard(event_id)  # bounded: the ids waiting for their retry
        super()._answer(request_line, sent, event_id)


class _Fastest(asyncio.Protocol):
    """httptools parses; every complete request gets a 202 (body read, not kept)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import httptools

        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:  # a malformed request: drop the connection
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.parser.should_keep_alive():
            self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        else:
            self.transport.write(
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.close()


async def fastest(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Fastest, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


async def lean(port: int, protocol: type[_Lean] = _Lean) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    import uvloop

    kind, port = sys.argv[1], int(sys.argv[2])
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if kind in ("lean", "fastest", "flaky"):
        if kind == "fastest":
            asyncio.run(fastest(port))
        else:
            asyncio.run(lean(port, _Flaky if kind == "flaky" else _Lean))
        return
    app = bare(port) if kind == "bare" else subscriber(port)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
