"""One consumer session's fetch -> store loop and its rebalance listener.

Why apart from :mod:`sources.kafka.adapter`: the adapter decodes, stores and commits
(what a record becomes and when an offset may be committed); this is the order of the
session's steps (while one ``emit`` stores, the next batches are fetched and decoded,
:mod:`sources.kafka.ahead`) and what a rebalance changes (the start commits of new
partitions, what is stored already of them: :mod:`sources.kafka.positions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from sources.kafka.ahead import Fetched, merged
from sources.kafka.commits import Committer
from sources.kafka.positions import Skips
from sources.support.base import Emit
from sources.support.emitting import Outcome
from sources.support.reconnect import describe

if TYPE_CHECKING:
    from sources.kafka.adapter import KafkaAdapter

log = logging.getLogger(__name__)

#: Batches fetched and decoded ahead while one ``emit`` stores (:mod:`sources.kafka.ahead`).
AHEAD: Final = 4
POLL_MS: Final = 500
PROBE_AFTER: Final = 2.0


class Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers newly assigned partitions so the loop can commit their start and
    skip what of them is stored already (:mod:`sources.kafka.positions`)."""

    def __init__(self, committer: Committer) -> None:
        self.pending: set[Any] = set()
        self.unchecked: set[Any] = set()
        """Assigned partitions whose stored position was not looked up yet."""
        self.skips = Skips()
        self.stored: dict[str, dict[int, int] | None] = {}
        """Per topic, since the last assignment: the highest stored offset of each
        partition (None: not known), read from the broker once per topic."""
        self.committer = committer
        self.storing: asyncio.Task[Outcome[Any]] | None = None
        """The ``emit`` in flight (it hands its offsets to the committer when stored)."""
        self.revoked = False
        """Set on a revocation: what was fetched ahead and not stored is read again."""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.pending.difference_update(revoked)
        self.unchecked.difference_update(revoked)
        self.skips.forget(revoked)
        self.revoked = True
        # What was stored is committed before the partitions go to another member.
        try:
            if self.storing is not None:
                await asyncio.wait({self.storing})
            await self.committer.flush()
        except (KafkaError, OSError) as exc:
            log.info("commit before a rebalance failed (%s): read again", describe(exc))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.pending.update(assigned)
        self.unchecked.update(assigned)
        self.stored.clear()


class Loop:
    """One session's fetch -> store loop: while one ``emit`` stores, the next batches
    are fetched and decoded (up to :data:`AHEAD`), then stored together by the next
    ``emit`` (:mod:`sources.kafka.ahead`)."""

    def __init__(
        self,
        adapter: KafkaAdapter,
        consumer: Any,
        committer: Committer,
        assignments: Assignments,
        emit: Emit,
    ) -> None:
        self.adapter = adapter
        self.consumer = consumer
        self.committer = committer
        self.assignments = assignments
        self.emit = emit
        self.fetch: asyncio.Task[dict[Any, Sequence[Any]]] | None = None
        self.ahead: list[Fetched] = []
        self.batch = Fetched()  # what the emit in flight stores
        self.idle_since = time.monotonic()

    async def run(self) -> None:
        adapter, assignments = self.adapter, self.assignments
        while True:
            if assignments.revoked:  # read again from the group's commits
                assignments.revoked = False
                self.ahead.clear()
            storing = assignments.storing
            if storing is None:
                if self.ahead:
                    self.batch = merged(self.ahead)
                    self.ahead = []
                    storing = assignments.storing = asyncio.create_task(
                        adapter._store(self.committer, self.batch, self.emit),
                        name=f"{adapter.name} emit",
                    )
                elif assignments.pending and self.fetch is None:
                    await adapter._commit_start(self.consumer, assignments)  # all stored
            if self.fetch is None and len(self.ahead) < AHEAD:
                self.fetch = asyncio.create_task(
                    self.consumer.getmany(timeout_ms=POLL_MS, max_records=adapter.batch),
                    name=f"{adapter.name} fetch",
                )
            await asyncio.wait(
                [t for t in (self.fetch, storing) if t is not None],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if storing is not None and storing.done():
                assignments.storing = None
                outcome = storing.result()
                if outcome.error is not None:
                    await self._failed(outcome)
                    continue
            if self.fetch is not None and self.fetch.done():
                await self._fetched(self.fetch.result())

    async def _fetched(self, batches: dict[Any, Sequence[Any]]) -> None:
        self.fetch = None
        adapter = self.adapter
        if batches:
            adapter._mark("connected")
            self.ahead.append(adapter._prepare(batches, self.assignments))
            self.idle_since = time.monotonic()
        elif self.ahead or self.assignments.storing is not None:
            return
        elif self.committer.pending():
            await self.committer.flush()  # idle: the last commit is done or raised
        elif time.monotonic() - self.idle_since > PROBE_AFTER:
            await adapter._probe(self.consumer)
            self.idle_since = time.monotonic()

    async def _failed(self, outcome: Outcome[Any]) -> None:
        """The emit in flight failed: what was fetched after it is thrown away (read
        again after the rewind), once the fetch in flight has ended."""
        if self.fetch is not None:
            await asyncio.wait({self.fetch})
            self.ahead.append(self.adapter._prepare(self.fetch.result(), self.assignments))
            self.fetch = None
        dropped, self.ahead = self.ahead, []
        await self.adapter._rewind(self.consumer, self.committer, self.batch, outcome, dropped)

    async def cancel(self) -> None:
        """Session end: stop the fetch and the emit in flight (nothing more is committed
        for it; its records are read again)."""
        for task in (self.fetch, self.assignments.storing):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})
        self.fetch = self.assignments.storing = None
