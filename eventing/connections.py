"""Bounds on connections: how many at once, and how long one may sit without a request.

Why: with aiohttp's defaults a connection that never finishes its request headers (a
"slowloris" client) is kept for an hour, and nothing caps how many are open, so a
few hundred of them use up the process's file descriptors and every other client
fails. Here:

* ``idle_timeout``: a connection is closed when no complete request head arrived
  within that many seconds of it opening or of the previous answer (aiohttp's
  keep-alive timer, which a trickle of partial headers does not reset); a request
  whose head arrived is bounded by the body read deadline instead;
* ``max_connections``: beyond it a new connection is answered ``503`` with
  ``Retry-After`` and closed at once, so those already open keep working;
* a client's malformed request is one rate-limited WARNING line, not a traceback
  (:class:`ClientErrorLogger`);
* :func:`raise_open_file_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard limit
  at start, so the cap, not the kernel, decides.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

logger = logging.getLogger(__name__)

_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 38\r\nConnection: close\r\n\r\n{"error":"too many open connections"}\n'
)


class ClientErrorLogger(logging.Logger):
    """The server's logger: a request the client got wrong (malformed HTTP) is at most
    one WARNING line per ``every`` seconds, with how many were folded into it, never
    a traceback; anything else is logged as it comes (a 500 is our bug)."""

    def __init__(self, name: str, every: float = 10.0) -> None:
        super().__init__(name)
        self.parent = logging.getLogger(name.rsplit(".", 1)[0])
        self.every = every
        self._last = 0.0
        self._folded = 0

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            now = time.monotonic()
            if now - self._last < self.every:
                self._folded += 1
                return
            folded, self._folded, self._last = self._folded, 0, now
            self.warning(
                "malformed request refused (%s: %s)%s",
                type(error).__name__,
                str(error.message)[:200],
                f"; {folded} more since the last such line" if folded else "",
            )
            return
        super().exception(msg, *args, **kwargs)


class GuardedServer(web.Server):
    """aiohttp's low-level server with a connection cap and an idle deadline."""

    def __init__(
        self, handler: Any, *, max_connections: int, idle_timeout: float, **kwargs: Any
    ) -> None:
        kwargs.setdefault("logger", ClientErrorLogger(f"{__name__}.http"))
        super().__init__(handler, keepalive_timeout=idle_timeout, **kwargs)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.refused = 0
        self._lingering: set[asyncio.Task[None]] = set()

    def open_connections(self) -> int:
        return len(self._connections)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if len(self._connections) >= self.max_connections:
            self.refuse(transport)
            return
        super().connection_made(handler, transport)

    def refuse(self, transport: asyncio.Transport) -> None:
        """Answer 503 and close: the cap is reached (logged now and then)."""
        self.refused += 1
        if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
            logger.warning(
                "%d connections open (the limit): refused %d so far",
                self.max_connections,
                self.refused,
            )
        transport.write(_BUSY)
        transport.close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        task = handler._task_handler
        if task is not None and not task.done():
            self._lingering.add(task)
            task.add_done_callback(self._lingering.discard)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Also end handlers whose client is gone but that still linger over an unread
        body (aiohttp forgets them once the connection is lost)."""
        await super().shutdown(timeout)
        tasks = list(self._lingering)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard limit; return the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # pragma: no cover - platform dependent
            logger.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    return int(soft)


def private_dir(path: Path) -> None:
    """Create ``path`` if needed and make it the user's alone (0700): the store, the
    admin token and the lock inside it are nobody else's business."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
