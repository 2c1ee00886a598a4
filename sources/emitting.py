"""Handing a batch of decoded messages to ``emit`` and accounting for the outcome.

Why one place: every broker source has the same three outcomes per batch, and the
upstream acknowledgement depends on them being told apart exactly:

- ``emit`` returned: the events are stored; acknowledge them upstream.
- ``emit`` raised :class:`InvalidEventError` (for instance the broker's own size
  limit is lower than the source's): the batch is retried one event at a time so
  that only the bad events are refused (never retried) and the rest are stored.
- ``emit`` raised anything else (:class:`StoreError` above all): nothing is
  acknowledged; the caller hands the messages back upstream (nack/requeue, seek back,
  no PUBACK) and backs off. Counted in ``health.failed``.

Counters: ``received`` counts upstream messages, ``emitted`` stored events,
``refused`` messages dropped because they are not valid events or are too large,
``failed`` events whose ``emit`` failed (they come back and are counted again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

from eventing.errors import InvalidEventError
from eventing.events import Event
from sources.base import Emit, SourceHealth
from sources.reconnect import describe

T = TypeVar("T")


async def emit_batch(
    emit: Emit,
    items: Sequence[tuple[T, Event]],
    health: SourceHealth,
    log: logging.Logger,
) -> list[T]:
    """Emit the events of ``(message, event)`` pairs; return the messages whose events
    were refused by the broker as invalid. Raises what ``emit`` raised otherwise (the
    caller must then acknowledge none of the batch)."""
    if not items:
        return []
    events = [event for _, event in items]
    try:
        await emit(events)
    except InvalidEventError as exc:
        if len(items) == 1:
            refuse(health, log, f"event {events[0].id[:80]!r} refused by the broker", exc)
            return [items[0][0]]
    except Exception:
        health.failed += len(items)
        raise
    else:
        health.emitted += len(items)
        return []
    refused: list[T] = []
    for message, event in items:  # isolate the invalid ones
        try:
            await emit([event])
        except InvalidEventError as exc:
            refuse(health, log, f"event {event.id[:80]!r} refused by the broker", exc)
            refused.append(message)
        except Exception:
            health.failed += 1
            raise
        else:
            health.emitted += 1
    return refused


def refuse(health: SourceHealth, log: logging.Logger, what: str, exc: BaseException) -> None:
    """Count a message that will never become an event, and say why (no payload)."""
    health.refused += 1
    health.last_error = f"{what}: {describe(exc)}"
    log.warning("%s: %s: %s", health.name, what, describe(exc))


def too_large(size: int, limit: int) -> InvalidEventError | None:
    """The error for a message over the limit, or None."""
    if size <= limit:
        return None
    return InvalidEventError(f"message of {size} bytes is over the limit of {limit} bytes")
