"""Brokers an ingress worker publishes to itself, without the main process.

Why: for a broker whose store is a server every process can reach (a Kafka topic),
sending each event over the socketpair to the main process, which produces it and
answers back, costs both processes a hop per event and leaves the produce on the main
process, which also consumes and delivers. A broker class may instead hand the
worker a *spec* (plain JSON values); the worker's composition root
(``eventing.app.ingress_worker``) turns it into a :class:`DirectPublisher` through a
registry keyed by the spec's ``kind``. The 202 still waits for the broker's
acknowledgement, and a refusal is still 503 with ``Retry-After``.

The main process still learns of every event the worker stored: one ``T`` frame per
batch after the acknowledgement (:func:`~eventing.ingress.ipc.encode_tap`), which
feeds its tap (the dashboard, ``eventing tail``, ``explain``, the trace exporter).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from eventing.errors import StoreError
from eventing.events import Event

logger = logging.getLogger(__name__)

Done = Callable[[StoreError | None], None]

TELL_AT_MOST = 4096
"""Events in one tap frame at most (a loop turn's answers are told together)."""


class DirectPublisher(Protocol):
    """A broker's publisher living in the ingress worker."""

    key: str
    ready: bool
    """Whether it can take events now (else :meth:`publish` refuses with 503)."""

    async def start(self) -> None:
        """Connect (bounded); an unreachable server is not an error (503 until then)."""

    async def close(self, timeout: float = 5.0) -> None:
        """Let what is in flight finish (bounded), then disconnect."""

    async def publish(self, events: Sequence[Event]) -> None:
        """Store ``events``; return once acknowledged. Raises ``StoreError``."""

    def publish_soon(self, events: Sequence[Event], done: Done) -> None:
        """:meth:`publish` with a callback; raises ``StoreError`` at once when it cannot
        take events now."""


DirectFactory = Callable[[Mapping[str, Any], float], DirectPublisher]
"""Builds a publisher from a broker's spec and the worker's answer deadline (s)."""


class Tapped:
    """A :class:`DirectPublisher` as the worker's :class:`Ingress` sees it: what it
    stored is also told to the main process (``tell``, fire and forget), once per
    loop turn for all the requests answered in it (one frame for a produced batch of
    one-event requests, not one per request: each frame costs both processes a
    marshal and a dispatch)."""

    def __init__(
        self, inner: DirectPublisher, tell: Callable[[str, Sequence[Event]], None]
    ) -> None:
        self.inner = inner
        self.key = inner.key
        self.tell = tell
        self._stored: list[Event] = []

    async def publish(self, events: Sequence[Event]) -> None:
        await self.inner.publish(events)
        self._told(events)

    def publish_soon(self, events: Sequence[Event], done: Done) -> None:
        def stored(error: StoreError | None) -> None:
            if error is None:
                self._told(events)
            done(error)

        self.inner.publish_soon(events, stored)

    def _told(self, events: Sequence[Event]) -> None:
        if not self._stored:
            asyncio.get_running_loop().call_soon(self._tell)
        self._stored.extend(events)
        if len(self._stored) >= TELL_AT_MOST:
            self._tell()

    def _tell(self) -> None:
        events, self._stored = self._stored, []
        if events:  # (a full list was told early; the scheduled call finds none)
            self.tell(self.key, events)

    def drops(self) -> Mapping[tuple[str, str], int]:
        return {}


class DirectBrokers:
    """The direct publishers of one worker: started from the specs, put in the
    worker's broker map, forgotten when the main process removes a broker, closed at
    the end."""

    def __init__(self) -> None:
        self.publishers: list[DirectPublisher] = []
        self._closing: set[asyncio.Task[None]] = set()

    async def start(
        self,
        specs: Sequence[Mapping[str, Any]],
        factories: Mapping[str, DirectFactory],
        answer_timeout: float,
    ) -> None:
        """Build and connect (bounded) a publisher per spec; a spec of a kind without
        a factory stays with the main process."""
        for spec in specs:
            factory = factories.get(str(spec.get("kind")))
            if factory is None:
                logger.warning("no direct publisher for a %s broker; it goes through the "
                               "main process", spec.get("kind"))  # fmt: skip
                continue
            publisher = factory(spec, answer_timeout)
            await publisher.start()
            self.publishers.append(publisher)

    def install(
        self,
        brokers: MutableMapping[str, Any],
        tell: Callable[[str, Sequence[Event]], None],
    ) -> None:
        for publisher in self.publishers:
            brokers[publisher.key] = Tapped(publisher, tell)

    def forget(self, key: str, instead: Any, *maps: MutableMapping[Any, Any]) -> None:
        """Broker ``key`` was removed: its publisher closes, and wherever a map holds
        it (``maps``, by any key), ``instead`` takes its place."""
        gone = [p for p in self.publishers if p.key == key]
        if not gone:
            return
        for table in maps:
            for name, value in list(table.items()):
                if isinstance(value, Tapped) and value.key == key:
                    table[name] = instead
        for publisher in gone:
            self.publishers.remove(publisher)
            task = asyncio.create_task(publisher.close(), name=f"close direct {key}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def readiness(self) -> dict[str, bool]:
        return {p.key: p.ready for p in self.publishers}

    async def close(self, timeout: float = 5.0) -> None:
        for publisher in self.publishers:
            await publisher.close(timeout)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=timeout)
