"""What the dispatcher needs of a delivery target.

Implementations live in the ``sinks`` package (HTTP subscribers, ``log:``, workloads)
and are chosen at the composition root. ``wait_ready`` is how a workload at zero
replicas holds events in the broker without burning retries: the dispatcher awaits
it before every attempt, and a plain URL is always ready.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from eventing.events import Event


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt."""

    status: int | None
    """HTTP status, or None when no response arrived (network error, timeout)."""
    reply: Event | None = None
    retry_after: float | None = None
    body: bytes = b""
    """Start of the response body (for ``knativeerrordata``), at most 1024 bytes."""
    error: str | None = None
    """Why the attempt failed when there was no usable response."""


class Sink(Protocol):
    target: str
    """Where events go, as shown to people and in ``knativeerrordest``."""

    async def wait_ready(self) -> None: ...

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome: ...

    async def close(self) -> None: ...


class FastSend(Protocol):
    """A sink that can make an attempt without a task (the dispatcher's fast path):
    ``try_send`` starts the request and calls ``done`` with the outcome later, or
    returns False when it cannot right now. Then ``when_free`` says whether the target
    is full (its connections are shared with other triggers): it queues ``wake``, to be
    called once when there is room, and the dispatcher keeps the event parked instead
    of making a task that waits; else the dispatcher awaits ``send``."""

    def try_send(
        self, event: Event, *, timeout: float, structured: bool, done: Callable[[Outcome], None]
    ) -> bool: ...

    def when_free(self, wake: Callable[[], None]) -> bool: ...
