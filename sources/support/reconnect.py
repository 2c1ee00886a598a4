"""Staying connected to an upstream server: the reconnect loop (with the jittered
bounded backoff and the secret masking of :mod:`eventing.backoff`, re-exported here).

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
from collections.abc import Awaitable, Callable
from typing import Final

from eventing.backoff import Backoff, describe, redact
from sources.support.base import SourceHealth

__all__ = ["Backoff", "close_quietly", "describe", "keep_connected", "redact"]

CLOSE_TIMEOUT: Final = 5.0


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
