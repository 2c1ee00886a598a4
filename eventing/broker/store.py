"""What a broker class needs from storage, and the records it keeps.

The store knows nothing of filters or HTTP: it appends events with the list of
triggers each one matched (one ``pending`` row per match, which is what makes every
trigger's backlog exact), removes a trigger's row when the event was delivered or
dead-lettered, and keeps the dead-letter records of the built-in ``dlq:`` sink.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eventing.events import Event

#: A deduplication key as stored: (scope, source, id, accepted at).
SeenRow = tuple[str, str, str, float]


@dataclass(slots=True)
class Routed:
    """An event to append and the triggers (keys) it matched."""

    event: Event
    triggers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A failed delivery kept by the ``dlq:`` sink."""

    id: int
    broker: str
    trigger: str
    event: Event
    failed_at: float
    attempts: int
    reason: str
    status: int | None = None


@dataclass(slots=True)
class StoreStats:
    events: int = 0
    bytes: int = 0
    commits: int = 0
    pending: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)


class Store(Protocol):
    """Durable (or not) storage behind the embedded broker classes.

    Every mutating call returns once the change is stored (for the durable store:
    committed to disk); raises :class:`eventing.errors.StoreError` when it cannot be.
    """

    durable: bool

    async def open(self, triggers: Sequence[str]) -> None:
        """Open storage; forget pending rows of triggers that no longer exist."""

    async def close(self) -> None: ...

    async def append(
        self,
        broker: str,
        routed: Sequence[Routed],
        *,
        seen: Sequence[SeenRow] = (),
        forget: Sequence[tuple[str, str, str]] = (),
        committed: Callable[[], None] | None = None,
    ) -> None:
        """Store events and their matches; sets ``event.seq``. Raises StoreFullError.

        ``seen`` are deduplication keys (scope, source, id, time) to keep with the
        events in the same transaction, ``forget`` keys (scope, source, id) to delete
        (:mod:`eventing.broker.dedup`); a store that is not durable ignores both.
        ``committed`` is called once, on the event loop, when the events are stored
        far enough that delivering them keeps at-least-once (committed, maybe not yet
        fsynced), and before this call returns; never if they were not stored."""

    async def load_seen(self, broker: str) -> list[SeenRow]:
        """The deduplication keys kept for ``broker`` (none when not durable)."""

    async def ack(self, trigger: str, seqs: Sequence[int]) -> None: ...

    def ack_nowait(self, trigger: str, seq: int) -> None:
        """Queue an ack; it is stored with the next commit (see the SQLite store)."""

    async def dead_letter(
        self,
        broker: str,
        trigger: str,
        event: Event,
        *,
        attempts: int,
        reason: str,
        status: int | None,
    ) -> None:
        """Keep ``event`` as a dead letter and remove the trigger's pending row, at once."""

    async def release_trigger(self, trigger: str) -> int:
        """Release a deleted trigger's backlog: remove its pending rows (and the events
        no other trigger has pending), after every append already submitted; returns
        the number of rows removed."""

    async def load_pending(self, trigger: str, after_seq: int, limit: int) -> list[Event]:
        """Pending events of ``trigger`` with ``seq > after_seq``, in seq order."""

    def pending_count(self, trigger: str) -> int: ...

    def stats(self) -> StoreStats: ...

    async def list_dead_letters(
        self, trigger: str | None, limit: int, after_id: int = 0
    ) -> list[DeadLetter]: ...

    async def get_dead_letter(self, dl_id: int) -> DeadLetter | None: ...

    async def delete_dead_letters(self, ids: Sequence[int]) -> int: ...
