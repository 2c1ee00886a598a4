"""A real HTTP subscriber on loopback that records every request it receives and
answers as the test tells it to (status, reply event, Retry-After).

Tests wait on it with ``wait_for`` (a condition with a deadline), never with sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from eventing.codec import http as binding
from eventing.codec.jsonformat import parse_structured
from eventing.events import Event


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    event: Event | None
    error: str | None = None


@dataclass
class Answer:
    status: int = 202
    reply: Event | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Responder = Callable[[Received, int], Answer]


class RecordingSubscriber:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.responder: Responder = lambda received, n: Answer()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        event: Event | None = None
        error = None
        try:
            mode = binding.detect_mode(request.headers.get("Content-Type"))
            if mode is binding.Mode.STRUCTURED:
                event = parse_structured(body)
            else:
                event = binding.decode_binary(
                    request.headers.items(), request.headers.get("Content-Type"), body
                )
        except Exception as exc:
            error = str(exc)
        received = Received(request.path, headers, body, event, error)
        async with self._changed:
            self.received.append(received)
            count = len(self.received)
            self._changed.notify_all()
        answer = self.responder(received, count)
        if answer.reply is not None:
            reply_headers, reply_body = binding.encode_binary(answer.reply)
            reply_headers.update(answer.headers)
            return web.Response(status=answer.status, headers=reply_headers, body=reply_body)
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    def events(self, path: str | None = None) -> list[Event]:
        return [
            r.event
            for r in self.received
            if r.event is not None and (path is None or r.path == path)
        ]

    def ids(self, path: str | None = None) -> list[str]:
        return [e.id for e in self.events(path)]

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.received))
        return self.received

    async def wait_count(
        self, n: int, path: str | None = None, timeout: float = 20.0
    ) -> list[Event]:
        await self.wait_for(
            lambda rs: len([r for r in rs if path is None or r.path == path]) >= n, timeout
        )
        return self.events(path)
