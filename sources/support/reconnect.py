"""Staying connected to an upstream server: jittered bounded backoff, the reconnect loop,
and secret masking for anything that reaches logs or ``health``.

Why our own loop rather than the clients' "robust" modes (aio-pika's
``connect_robust``, paho's auto-reconnect): recovery that happens inside a library
is invisible to ``health`` and re-declares topology from a cache instead of from the
resource; here every reconnect goes through the top of the adapter's session, which
declares topology again from the spec, and the state, last error and reconnect count
are ours to show. Transient failures (server restart, network) are retried here
forever with backoff; anything else marks the source ``failed`` and propagates to the
supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from sources.support.base import SourceHealth

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_KEY_VALUE_SECRET = re.compile(r"(?i)(?P<head>(password|passwd|secret|token)[=:]\s*)\S+")
MAX_ERROR_CHARS: Final = 300
CLOSE_TIMEOUT: Final = 5.0


def redact(text: str) -> str:
    """Mask passwords in URLs (``amqp://user:***@host``) and ``password=...`` pairs."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_VALUE_SECRET.sub(r"\g<head>***", text)


def describe(exc: BaseException) -> str:
    """One line for ``health.last_error``: the exception type and its masked message."""
    message = str(exc).strip().replace("\n", " ")
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return redact(text)[:MAX_ERROR_CHARS]


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": half the delay fixed, half random, so
    many sources restarting together do not reconnect in lock-step, yet none retries
    in a busy loop. Bounded by ``maximum``; ``reset()`` after a success."""

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    attempt: int = field(default=0, init=False)

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt = min(self.attempt + 1, 64)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


async def keep_connected(
    health: SourceHealth,
    session: Callable[[], Awaitable[None]],
    *,
    transient: tuple[type[BaseException], ...],
    backoff: Backoff,
    log: logging.Logger,
) -> None:
    """Run ``session()`` until cancelled, reconnecting after transient failures.

    ``session`` connects, declares its topology, sets ``health`` to ``connected``, and
    returns or raises when the connection is lost. A clean return counts as a lost
    connection too: the server closed it. The delay before the next attempt grows
    with every loss until ``backoff.reset()``: a session should reset it after real
    progress (a message acknowledged upstream), not merely on connecting. Reset on
    subscribe, a connection that breaks right after (a message the client cannot
    parse, redelivered first every time) reconnects in a hot loop (issue 15).
    """
    try:
        while True:
            try:
                await session()
                error = "connection closed by the server"
            except transient as exc:
                error = describe(exc)
            health.set_state("reconnecting", error)
            delay = backoff.next()
            log.warning("%s: %s; reconnecting in %.1fs", health.name, error, delay)
            await asyncio.sleep(delay)
    except asyncio.CancelledError:
        health.set_state("stopped")
        raise
    except Exception as exc:
        health.set_state("failed", describe(exc))
        log.error("%s failed: %s", health.name, describe(exc))
        raise


async def close_quietly(close: Callable[[], Awaitable[object]], log: logging.Logger) -> None:
    """Close a client within :data:`CLOSE_TIMEOUT`; a dead server must not hang shutdown."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await close()
    except Exception as exc:  # closing a broken connection may fail; TimeoutError too
        log.debug("close failed: %s", describe(exc))
