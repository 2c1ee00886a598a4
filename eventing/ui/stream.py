"""Streaming answers: server-sent events for browsers, JSON lines for ``eventing tail``.

Every write has a deadline: a client that stops reading is disconnected after
:data:`WRITE_DEADLINE` seconds instead of holding its handler forever. A quiet stream
sends a heartbeat every :data:`HEARTBEAT` seconds, so idle connections stay open
through proxies and the client can tell a quiet system from a dead one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web

WRITE_DEADLINE = 10.0
HEARTBEAT = 15.0
#: How often a quiet stream looks whether its client is still connected.
TICK = 1.0

T = TypeVar("T")


class Stream:
    def __init__(self, request: web.Request, response: web.StreamResponse, sse: bool) -> None:
        self.request = request
        self.response = response
        self.sse = sse

    async def next(self, queue: asyncio.Queue[T]) -> T:
        """The next item of ``queue``; meanwhile a heartbeat every :data:`HEARTBEAT`
        seconds. Raises ConnectionResetError once the client has gone (noticed within
        :data:`TICK` seconds), so its slot is freed without waiting for a write."""
        quiet = 0.0
        while True:
            transport = self.request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the client went away")
            try:
                async with asyncio.timeout(TICK):
                    return await queue.get()
            except TimeoutError:
                quiet += TICK
                if quiet >= HEARTBEAT:
                    quiet = 0.0
                    await self.heartbeat()

    @classmethod
    async def open(cls, request: web.Request, *, sse: bool | None = None) -> Stream:
        if sse is None:
            sse = "text/event-stream" in request.headers.get("Accept", "")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream" if sse else "application/x-ndjson",
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        stream = cls(request, response, sse)
        if sse:
            await stream._write(b": open\n\n")
        return stream

    async def send(self, payload: Any, event: str = "message") -> None:
        data = json.dumps(payload, separators=(",", ":"))
        if self.sse:
            await self._write(f"event: {event}\ndata: {data}\n\n".encode())
        else:
            await self._write(data.encode() + b"\n")

    async def heartbeat(self) -> None:
        await self._write(b": ping\n\n" if self.sse else b"{}\n")

    async def _write(self, chunk: bytes) -> None:
        async with asyncio.timeout(WRITE_DEADLINE):
            await self.response.write(chunk)
