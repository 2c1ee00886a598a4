"""Let a client's start finish when the task awaiting it is cancelled.

Client libraries (aiokafka among them) open connections inside ``start`` and keep
track of them only once the start has returned: a start cut short by a cancellation
(a stop right after the start, a connect deadline) leaves a socket and its reader
task behind that no later ``stop`` can reach. Waiting for the start to finish,
within a bound, before the cancellation goes on lets the caller's cleanup close
everything that was opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

SETTLE_SECONDS = 5.0
"""How long a cancelled start may take to finish before it is cancelled too."""


async def uncut(start: Awaitable[T], settle: float = SETTLE_SECONDS) -> T:
    """Await ``start``; cancelled meanwhile, let it finish (at most ``settle``
    seconds, then cancel it) and re-raise the cancellation."""
    task = asyncio.ensure_future(start)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # its failure is the caller's cleanup
            async with asyncio.timeout(settle):
                await task
        raise
