"""The admin API's routes for operators: the dashboard (``/ui``), its data
(``/v1/ui/state``, ``/v1/ui/stream``), ``POST /v1/explain`` and ``GET /v1/tail``.

They are added to the admin application, so they sit behind whatever the admin API
requires of every request. Every input is bounded before work: request bodies,
query sizes, the number of live streams.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from aiohttp import web

from eventing.ui.hooks import Matcher, UiHooks
from eventing.ui.stream import Stream
from eventing.ui.tap import Seen

MAX_BODY = 64 * 1024
MAX_QUERY_ATTRS = 20
MAX_EXPRESSION = 4096
#: The dashboard's files: name -> content type (nothing else under /ui is served).
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def register(hooks: UiHooks) -> Callable[[web.Application], None]:
    """Routes to add to the admin application (``AdminHooks.routes``)."""

    def add(app: web.Application) -> None:
        routes = _Routes(hooks)
        app.router.add_get("/ui", routes.index)
        app.router.add_get("/ui/{name}", routes.static)
        app.router.add_get("/v1/ui/state", routes.state)
        app.router.add_get("/v1/ui/stream", routes.stream)
        app.router.add_post("/v1/explain", routes.explain)
        app.router.add_get("/v1/tail", routes.tail)
        app.on_shutdown.append(routes.close_streams)

    return add


def _static(name: str) -> bytes:
    return resources.files("eventing.ui").joinpath("static", name).read_bytes()


class _Routes:
    def __init__(self, hooks: UiHooks) -> None:
        self.hooks = hooks
        self.streams: set[asyncio.Task[Any]] = set()
        # Read once, when the admin API is built: no file I/O in a request handler.
        self.files = {name: _static(name) for name in STATIC}

    async def close_streams(self, _: web.Application) -> None:
        """At shutdown: end every open stream now (they would otherwise hold the admin
        server's shutdown until its timeout, or outlive it)."""
        for task in list(self.streams):
            task.cancel()
        await asyncio.gather(*self.streams, return_exceptions=True)

    @contextmanager
    def _tracked(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self.streams.add(task)
        try:
            yield
        finally:
            self.streams.discard(task)

    async def index(self, _: web.Request) -> web.Response:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            return _error(404, "not found")
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        return web.Response(
            body=self.files[name],
            headers={
                "Content-Type": STATIC[name],
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "style-src 'self'; script-src 'self'; connect-src 'self'; "
                "frame-ancestors 'none'",
            },
        )

    async def state(self, _: web.Request) -> web.Response:
        sampler = self.hooks.sampler
        return web.json_response(
            {
                "topology": self.hooks.topology(),
                "samples": list(sampler.samples),
                "decisions": list(sampler.decisions),
                "interval": sampler.interval,
            }
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        sampler = self.hooks.sampler
        if sampler.full():
            return _error(429, "too many live pages at once")
        with self._tracked(), sampler.listen() as queue:
            out = await Stream.open(request, sse=True)
            try:
                while True:
                    kind, payload = await out.next(queue)
                    await out.send(payload, kind)
            except (ConnectionError, TimeoutError):
                pass
        return out.response

    async def explain(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_BODY:
            return _error(413, f"body larger than {MAX_BODY} bytes")
        try:
            body = json.loads(await request.content.read(MAX_BODY + 1) or b"{}")
        except ValueError:
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        try:
            return web.json_response(await self.hooks.explain(body))
        except LookupError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except ValueError as exc:
            return _error(400, str(exc))

    async def tail(self, request: web.Request) -> web.StreamResponse:
        try:
            matcher = self._matcher(request)
        except ValueError as exc:
            return _error(400, str(exc))
        tap = self.hooks.tap
        if tap.full():
            return _error(429, f"at most {tap.max_watchers} tails at once")
        with self._tracked(), tap.watch() as watcher:
            out = await Stream.open(request, sse=request.query.get("format") == "sse" or None)
            reported = 0
            try:
                while True:
                    seen = Seen(*await out.next(watcher.queue))
                    if watcher.dropped != reported:
                        reported = watcher.dropped
                        await out.send({"dropped": reported}, "dropped")
                    if matcher(seen):
                        await out.send(self.hooks.verdicts(seen), "event")
            except (ConnectionError, TimeoutError):
                pass
        return out.response

    def _matcher(self, request: web.Request) -> Matcher:
        pairs = request.query.getall("attr", [])
        if len(pairs) > MAX_QUERY_ATTRS:
            raise ValueError(f"at most {MAX_QUERY_ATTRS} attr filters")
        exact: dict[str, str] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not name:
                raise ValueError(f"attr {pair[:60]!r}: use name=value")
            exact[name] = value
        expression = request.query.get("cesql") or None
        if expression is not None and len(expression) > MAX_EXPRESSION:
            raise ValueError(f"a CESQL expression has at most {MAX_EXPRESSION} characters")
        return self.hooks.matcher(request.query.get("broker") or None, exact, expression)
