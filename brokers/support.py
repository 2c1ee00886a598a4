"""Helpers shared by the server-backed broker classes: backoff and secret masking
(:mod:`eventing.backoff`, re-exported here), config parsing, and the dead-letter queue
kept as records in a log of the server. No client library here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from eventing.backoff import Backoff, describe, redact
from eventing.broker.deadletter_log import (
    DeadLetterLog,
    parse_meta,
    parse_tombstone,
    tombstone_headers,
)
from eventing.broker.dedup import DUPLICATE, Deduplicator
from eventing.broker.store import DeadLetter
from eventing.errors import InvalidEventError
from eventing.events import AttributeValue, Event

__all__ = [
    "Backoff",
    "ConfigReader",
    "LoggedDeadLetters",
    "describe",
    "merged_drops",
    "redact",
    "refresh_backlogs",
    "restore_types",
]

#: The record a deletion (or a replay) appends; its ``eventing-dl-*`` headers say which.
TOMBSTONE = Event({"specversion": "1.0", "id": "-", "source": "-", "type": "-"})


class LoggedDeadLetters:
    """A ``DeadLetterQueue`` whose dead letters are records in a log of the server (a
    Kafka topic, a RabbitMQ stream): every process reads the log into a
    :class:`~eventing.broker.deadletter_log.DeadLetterLog` (:meth:`index`) and answers
    from it; a deletion appends a tombstone record (:meth:`write_tombstone`, the class's
    own write), so every process and every restart sees the same dead letters."""

    def __init__(self, broker_key: str) -> None:
        self.log = DeadLetterLog(broker_key)

    async def write_tombstone(self, headers: dict[str, str]) -> None:
        raise NotImplementedError

    async def list_dead_letters(
        self, trigger: str | None, limit: int, after_id: int = 0
    ) -> list[DeadLetter]:
        return self.log.list(trigger, limit, after_id)

    async def get_dead_letter(self, dl_id: int) -> DeadLetter | None:
        return self.log.get(dl_id)

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        mine = [i for i in ids if self.log.get(i) is not None]
        if not mine:
            return 0
        await self.write_tombstone(tombstone_headers(mine))
        return self.log.delete(-1, mine)

    def depths(self) -> Mapping[str, int]:
        return self.log.depths()

    def index(self, position: int, own: Mapping[str, str], decode: Callable[[], Event]) -> None:
        """Index the record at ``position`` of the log (``own``: its ``eventing-*``
        headers): a tombstone deletes, a dead letter is added, anything else (a record
        that is not ours, or not a CloudEvent) is skipped."""
        deletes = parse_tombstone(own)
        if deletes:
            self.log.delete(position, deletes)
            return
        meta = parse_meta(own)
        if meta is None:
            self.log.skip(position)
            return
        try:
            event = decode()
        except InvalidEventError:
            self.log.skip(position)
            return
        self.log.add(position, event, meta)


class _Counts(Protocol):
    drops: dict[tuple[str, str], int]


class _Backlog(Protocol):
    trigger: str

    async def backlog(self) -> int: ...


async def publish_once(
    dedup: Deduplicator,
    events: Sequence[Event],
    publish: Callable[[Sequence[Event]], Awaitable[None]],
    drops: dict[tuple[str, str], int],
) -> None:
    """Publish ``events`` through the class's deduplication window (in this process's
    memory for the server classes): duplicates are counted in ``drops`` as
    ``("", "duplicate")`` and not published; the rest go to ``publish``."""
    if not dedup.wants(events):
        await publish(events)
        return
    async with dedup.admit(events) as claim:
        if claim.fresh:
            await publish(claim.fresh)
    if claim.duplicates:
        key = ("", DUPLICATE)
        drops[key] = drops.get(key, 0) + len(claim.duplicates)


def merged_drops(
    own: Mapping[tuple[str, str], int], subscriptions: Iterable[_Counts]
) -> dict[tuple[str, str], int]:
    """A broker's drops by (trigger, reason): its own (routing) plus each subscription's
    (a foreign record, a filter after consume)."""
    out = dict(own)
    for sub in subscriptions:
        for key, n in sub.drops.items():
            out[key] = out.get(key, 0) + n
    return out


async def refresh_backlogs(
    connected: asyncio.Event,
    subscriptions: Mapping[str, _Backlog],
    errors: tuple[type[BaseException], ...],
    period: float,
    log: logging.Logger,
) -> None:
    """Keep every trigger's cached backlog (lag, queue depth) fresh for status and the
    autoscaler: read each in turn every ``period`` while connected; a read that fails
    is logged at debug and tried again in the next round."""
    while True:
        await connected.wait()
        for sub in list(subscriptions.values()):
            try:
                await sub.backlog()
            except errors as exc:
                log.debug("backlog of %s: %s", sub.trigger, describe(exc))
        await asyncio.sleep(period)


def restore_types(attributes: dict[str, AttributeValue], types: str) -> None:
    """Give ``int`` and ``bool`` extensions back the type that the bindings'
    ``eventing-types`` header (``name=int,other=bool``) records (headers are text); a
    value that does not parse as its type stays text."""
    for name, kind in dict(p.split("=", 1) for p in types.split(",") if "=" in p).items():
        text = attributes.get(name)
        if isinstance(text, str):
            if kind == "bool" and text in ("true", "false"):
                attributes[name] = text == "true"
            elif kind == "int" and text.lstrip("-").isdigit():
                attributes[name] = int(text)


class ConfigReader:
    """Typed reads of a broker's ConfigMap data that collect every problem."""

    def __init__(self, data: Mapping[str, str], known: set[str]) -> None:
        self.data = data
        self.problems: list[tuple[str, str]] = [
            (key, f"unknown key (known: {', '.join(sorted(known))})")
            for key in data
            if key not in known
        ]

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None or not value.strip():
            self.problems.append((key, "is required"))
            return ""
        return value.strip()

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        raw = self.data.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append((key, f"{raw[:40]!r} is not an integer"))
            return default
        if not low <= value <= high:
            self.problems.append((key, f"{value} is outside {low}..{high}"))
            return default
        return value

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if value not in allowed:
            self.problems.append((key, f"{value[:40]!r} is not one of {', '.join(allowed)}"))
            return default
        return value
