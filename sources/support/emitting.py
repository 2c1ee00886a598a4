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

The store's bound is checked per ``emit`` call, for the whole batch. A batch can
therefore be refused as full while part of it would fit, and a batch larger than the
bound (``--max-store-events`` below a source's prefetch, poll size or receive maximum)
would be refused forever, even by an empty store. :func:`emit_prefix` is what the
adapters use: on :class:`StoreFullError` it stores as long a prefix of the batch as
fits (halving the chunk on each refusal), and the adapter acknowledges exactly that
prefix upstream and hands the rest back.

Counters: ``received`` counts upstream messages, ``emitted`` stored events,
``refused`` messages dropped because they are not valid events or are too large,
``failed`` events whose ``emit`` failed (they come back and are counted again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from eventing.errors import InvalidEventError, StoreFullError
from eventing.events import Event
from sources.support.base import Emit, SourceHealth
from sources.support.reconnect import describe

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
    done = 0

    def stored(count: int) -> None:
        nonlocal done
        done += count

    try:
        return await _emit(emit, items, health, log, stored)
    except Exception:
        health.failed += len(items) - done
        raise


@dataclass
class Outcome(Generic[T]):
    """What :func:`emit_prefix` did with a batch: its first ``stored`` items are done
    (their events stored, or refused as invalid: those messages are in ``refused``);
    the rest were not stored because of ``error`` and must be handed back upstream."""

    stored: int
    refused: list[T] = field(default_factory=list)
    error: Exception | None = None


async def emit_prefix(
    emit: Emit,
    items: Sequence[tuple[T, Event]],
    health: SourceHealth,
    log: logging.Logger,
    *,
    before: Callable[[Sequence[tuple[T, Event]]], None] | None = None,
) -> Outcome[T]:
    """Emit the batch like :func:`emit_batch`; when the store is full before all of it
    fits, store the longest prefix that fits (see the module docstring). Never raises
    what ``emit`` raised: the error is in the outcome, and ``health.failed`` counts the
    items left unstored (once, however many halvings it took). ``before`` is called
    with each part of the batch just before it is emitted (what one ``emit`` stores
    together: :func:`sources.kafka.positions.key_last`)."""
    done = 0
    refused: list[T] = []
    size = len(items)

    def stored(count: int) -> None:
        nonlocal done
        done += count

    while done < len(items):
        start = done
        chunk = items[start : start + size]
        if before is not None:
            before(chunk)
        try:
            refused.extend(await _emit(emit, chunk, health, log, stored))
        except StoreFullError as exc:
            if done > start or len(chunk) == 1:  # a single event does not fit: full
                health.failed += len(items) - done
                return Outcome(done, refused, exc)
            size = max(1, len(chunk) // 2)
        except Exception as exc:
            health.failed += len(items) - done
            return Outcome(done, refused, exc)
    return Outcome(done, refused)


async def _emit(
    emit: Emit,
    items: Sequence[tuple[T, Event]],
    health: SourceHealth,
    log: logging.Logger,
    stored: Callable[[int], None],
) -> list[T]:
    """:func:`emit_batch` without counting failures; ``stored(n)`` is told how many
    leading items are done (stored or refused) as they are."""
    if not items:
        return []
    events = [event for _, event in items]
    try:
        await emit(events)
    except InvalidEventError as exc:
        if len(items) == 1:
            refuse(health, log, f"event {events[0].id[:80]!r} refused by the broker", exc)
            stored(1)
            return [items[0][0]]
    else:
        health.emitted += len(items)
        stored(len(items))
        return []
    refused: list[T] = []
    for message, event in items:  # isolate the invalid ones
        try:
            await emit([event])
        except InvalidEventError as exc:
            refuse(health, log, f"event {event.id[:80]!r} refused by the broker", exc)
            refused.append(message)
        else:
            health.emitted += 1
        stored(1)
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
