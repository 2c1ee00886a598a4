"""Delivery into a Broker (a Trigger whose subscriber is a ``ref`` to a Broker), in
process: the event is published into that broker as if it arrived at its ingress,
with its hop TTL decremented, so a loop of brokers ends (Knative's rule).

Answers as the ingress would: 202 once stored, 503 when the store is full or closed
(the dispatcher retries), 400 when the event's hop budget is spent (no retry helps).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eventing.delivery.sink import Outcome
from eventing.errors import InvalidEventError, StoreError
from eventing.events import TTL, Event

Publish = Callable[[Event], Awaitable[None]]


class BrokerSink:
    def __init__(self, broker_key: str, publish: Publish) -> None:
        self.target = f"broker:{broker_key}"
        self._publish = publish

    async def wait_ready(self) -> None:
        return None

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        attributes = dict(event.attributes)
        try:
            ttl = int(attributes.get(TTL, 255))
        except (TypeError, ValueError):
            ttl = 255
        attributes[TTL] = str(ttl - 1)
        try:
            await self._publish(Event(attributes, event.data))
        except InvalidEventError as exc:
            return Outcome(400, error=str(exc))
        except StoreError as exc:
            return Outcome(503, error=str(exc))
        return Outcome(202)

    async def close(self) -> None:
        return None
