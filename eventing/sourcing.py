"""The contract between the core and source adapters: ``run(emit)`` until cancelled, or a
webhook handler. It lives in the core so the ingress can serve webhook sources
without importing the ``sources`` package; :mod:`sources.support.base` re-exports it.

Why this shape: the adapter never knows where events go (Knative's adapter
``Start(ctx)`` with an injected client). ``emit`` returns only once the broker has
durably stored the events, so an adapter acknowledges upstream (AMQP ack, Kafka
commit, MQTT PUBACK, HTTP 2xx) after ``emit`` returns and never before; when
``emit`` raises :class:`eventing.errors.StoreError` the adapter must not acknowledge
(nack/requeue, do not commit, answer 503).

Each adapter keeps its native-message -> CloudEvent mapping a pure function, tested
without a server; ``run`` stays a thin network loop that re-declares its topology at
the top (the supervisor restarts it with backoff when it raises).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from eventing.events import Event

SourceState = Literal["starting", "connected", "stalled", "reconnecting", "failed", "stopped"]
"""``stalled``: connected, but holding unacknowledged upstream messages without
progress for a while (a source that can tell sets it; see ``SourceHealth.held``)."""


class Emit(Protocol):
    """Store events in the broker; return once stored, raise ``StoreError`` if not."""

    async def __call__(self, events: Sequence[Event], /) -> None: ...


@runtime_checkable
class Recall(Protocol):
    """What an ``emit`` may offer besides storing: the ids of events from ``source``
    that the broker remembers having stored (its deduplication window for the
    source, kept with the events by a durable store).

    Why: a source whose ids are positions (a Kafka record's ``partition:<p>/offset:<o>``)
    and whose records reach the broker in order needs one remembered id per stored
    batch and partition, not one per record: after a restart the highest stored
    position says which records read again are stored already
    (:mod:`sources.kafka.positions`)."""

    def stored_ids(self, source: str, /) -> Iterable[str] | None:
        """The remembered ids of ``source``'s events; None when this emit cannot tell
        (deduplication is off for the source or its broker, or ``source`` is too long
        for its ids to be remembered as they are)."""


@dataclass
class SourceHealth:
    """Live state and counters of one source, shown by ``eventing status`` and /metrics."""

    name: str
    kind: str
    state: SourceState = "starting"
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    received: int = 0
    emitted: int = 0
    refused: int = 0
    failed: int = 0
    reconnects: int = 0
    held: int = 0
    """Upstream messages received and not yet acknowledged (sources that hold them)."""
    stalls: int = 0
    """Times the source went ``stalled``."""

    def set_state(self, state: SourceState, error: str | None = None) -> None:
        if state != self.state:
            self.since = time.time()
        if state == "reconnecting":
            self.reconnects += 1
        self.state = state
        if error is not None or state == "connected":
            self.last_error = error


class Source(Protocol):
    """A long-running adapter: consumes upstream until cancelled."""

    name: str
    health: SourceHealth

    async def run(self, emit: Emit) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A received HTTP request, independent of the HTTP server library."""

    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive lookups: keys are lower-cased
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class WebhookSource(Protocol):
    """A source that lives on the ingress HTTP server at ``path``."""

    name: str
    path: str
    health: SourceHealth

    async def handle(self, request: WebhookRequest, emit: Emit) -> WebhookResponse: ...
