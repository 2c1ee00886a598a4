"""An optional OpenTelemetry exporter: spans for events that carry a W3C ``traceparent``.

``traceparent`` travels with the event anyway (stored, and sent to subscribers as the
HTTP header). With ``--otel-endpoint URL`` (default ``$OTEL_EXPORTER_OTLP_ENDPOINT``)
the broker also reports its own part of the trace, as children of the producer's span:

* ``publish <broker>`` (PRODUCER): from the event's arrival to its being stored, or,
  for a copy dropped as a duplicate of one stored before (answered 202 all the same),
  to that answer, with the attribute ``eventing.duplicate = "true"`` and no ``deliver``
  span after it;
* ``deliver <trigger>`` (CONSUMER): from the dispatcher taking it to its ack (status
  OK) or its dead letter (status ERROR), one per matching trigger.

Spans go to ``<endpoint>/v1/traces`` as OTLP/HTTP JSON, in batches, from one named
task; no OpenTelemetry package is needed. Events without a valid, sampled
``traceparent`` cost one attribute lookup. The queue is bounded: when the collector is
slow or away, spans are dropped and counted, never held in memory without bound, and
ingest never waits for the exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from eventing.app.aging import arrival
from eventing.broker.base import Receipt
from eventing.events import Event

logger = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
PRODUCER, CONSUMER = 4, 5
STATUS_OK, STATUS_ERROR = 1, 2
MAX_QUEUE = 4096
BATCH = 512
EXPORT_EVERY = 1.0
POST_DEADLINE = 5.0
FINAL_FLUSH = 0.8


def parse_traceparent(value: object) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid, sampled W3C ``traceparent``, else None."""
    if not isinstance(value, str):
        return None
    m = _TRACEPARENT.match(value)
    if m is None or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    if not int(m.group(3), 16) & 1:
        return None  # not sampled: the producer does not want it recorded
    return m.group(1), m.group(2)


@dataclass(slots=True)
class Span:
    trace_id: str
    parent_id: str
    name: str
    kind: int
    start: float
    end: float = 0.0
    ok: bool = True
    attributes: dict[str, str] = field(default_factory=dict)
    span_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def otlp(self) -> dict[str, Any]:
        return {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentSpanId": self.parent_id,
            "name": self.name,
            "kind": self.kind,
            "startTimeUnixNano": str(int(self.start * 1e9)),
            "endTimeUnixNano": str(int(self.end * 1e9)),
            "attributes": [
                {"key": k, "value": {"stringValue": v}} for k, v in self.attributes.items()
            ],
            "status": {"code": STATUS_OK if self.ok else STATUS_ERROR},
        }


class OtlpExporter:
    """Records spans (bounded) and posts them to an OTLP/HTTP collector in batches."""

    def __init__(self, endpoint: str, service: str = "eventing") -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"--otel-endpoint {endpoint[:80]!r} is not an http(s) URL")
        self.url = endpoint.rstrip("/") + "/v1/traces"
        self.service = service
        self.queue: deque[Span] = deque()
        self.dropped = 0
        self.exported = 0
        self.failed = 0
        self._open: dict[tuple[str, Receipt], Span] = {}

    def record(self, span: Span) -> None:
        if len(self.queue) >= MAX_QUEUE:
            self.dropped += 1
            return
        self.queue.append(span)

    # --- what the broker reports ----------------------------------------------------

    def published(self, broker: str, events: Sequence[Event]) -> None:
        now = time.time()
        for event in events:
            parent = parse_traceparent(event.attributes.get("traceparent"))
            if parent is not None:
                span = Span(*parent, f"publish {broker}", PRODUCER, arrival(event) or now, now)
                span.attributes.update(_event_attributes(event), **{"eventing.broker": broker})
                if event.duplicate:
                    span.attributes["eventing.duplicate"] = "true"
                self.record(span)

    def started(self, trigger: str, receipt: Receipt, event: Event) -> None:
        parent = parse_traceparent(event.attributes.get("traceparent"))
        if parent is None or len(self._open) >= MAX_QUEUE:
            return
        span = Span(*parent, f"deliver {trigger}", CONSUMER, time.time())
        span.attributes.update(_event_attributes(event), **{"eventing.trigger": trigger})
        try:  # noqa: SIM105 - per event: cheaper than contextlib.suppress
            self._open[(trigger, receipt)] = span
        except TypeError:  # an unhashable receipt: not traced
            pass

    def finished(self, trigger: str, receipt: Receipt, ok: bool) -> None:
        if not self._open:
            return
        try:
            span = self._open.pop((trigger, receipt), None)
        except TypeError:
            return
        if span is not None:
            span.end, span.ok = time.time(), ok
            self.record(span)

    # --- export --------------------------------------------------------------------

    async def run(self) -> None:
        """Export every second until cancelled; then what is queued, within
        :data:`FINAL_FLUSH` seconds (the ``ui`` group is stopped with a 1 s deadline)."""
        async with aiohttp.ClientSession() as http:
            try:
                while True:
                    await asyncio.sleep(EXPORT_EVERY)
                    await self.flush(http)
            finally:  # stopping: what is queued, within a short deadline
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    async with asyncio.timeout(FINAL_FLUSH):
                        await self.flush(http)

    async def flush(self, http: aiohttp.ClientSession) -> None:
        while self.queue:
            batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
            body = json.dumps(self._document(batch)).encode()
            try:
                async with (
                    asyncio.timeout(POST_DEADLINE),
                    http.post(
                        self.url, data=body, headers={"Content-Type": "application/json"}
                    ) as response,
                ):
                    await response.read()
                    ok = response.status < 300
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                ok = False
                logger.debug("OTLP export to %s failed: %s", self.url, exc)
            if ok:
                self.exported += len(batch)
            else:
                self.failed += len(batch)
                return  # try again with the next batch in a second

    def _document(self, spans: list[Span]) -> dict[str, Any]:
        return {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": self.service}}
                        ]
                    },
                    "scopeSpans": [
                        {"scope": {"name": "eventing"}, "spans": [s.otlp() for s in spans]}
                    ],
                }
            ]
        }


def _event_attributes(event: Event) -> dict[str, str]:
    return {
        "cloudevents.event_id": str(event.attributes.get("id", "")),
        "cloudevents.event_source": str(event.attributes.get("source", "")),
        "cloudevents.event_type": str(event.attributes.get("type", "")),
    }
