"""What the dispatcher reads from and writes into event attributes: the arrival time
(for the latency histogram), the TTL a reply inherits, and the extensions a dead
letter carries (Knative's ``knativeerror*`` and ours). Pure functions, kept apart so
the dispatcher reads as the delivery steps only.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache

from eventing.delivery.sink import Outcome
from eventing.events import ARRIVAL_TIME, TTL, Event

ERROR_DATA_MAX = 1024
"""Bytes of the subscriber's answer kept in ``knativeerrordata``."""


def reply_ttl(event: Event) -> int:
    """The TTL a reply to ``event`` gets (one less than the event's; 255 when unset)."""
    try:
        return int(event.attributes.get(TTL, 255)) - 1
    except ValueError:
        return 254


def dead_letter(event: Event, *, dest: str, outcome: Outcome, attempts: int, trigger: str) -> Event:
    """A copy of ``event`` with the extensions that say why it was given up on."""
    dead = event.copy()
    ext = dead.attributes
    ext["knativeerrordest"] = dest
    if outcome.status is not None:
        ext["knativeerrorcode"] = str(outcome.status)
    if outcome.body:
        ext["knativeerrordata"] = base64.b64encode(outcome.body[:ERROR_DATA_MAX]).decode()
    ext["eventingattempts"] = str(attempts)
    ext["eventingtrigger"] = trigger
    return dead


def arrival(event: Event) -> float | None:
    """The arrival time stamped by our ingress as epoch seconds (for the latency
    histogram and the oldest-age metric): as recorded in memory when the broker
    accepted it, or parsed from ``knativearrivaltime`` (the whole-second part once per
    second) for an event read back from the store, and then kept in ``event.arrived``
    (both readers of a delivered event ask: it is parsed once)."""
    if event.arrived:
        return event.arrived
    raw = event.attributes.get(ARRIVAL_TIME)
    if not isinstance(raw, str):
        return None
    last = _LAST[0]
    if raw == last[0]:  # the events of one stored batch share their arrival time
        event.arrived = last[1]
        return last[1]
    second, dot, fraction = raw.partition(".")
    if dot and fraction.endswith("Z") and fraction[:-1].isdigit():
        base = _epoch_second(second)
        if base is None:
            return None
        parsed = base + float("0." + fraction[:-1])
    else:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    event.arrived = parsed
    _LAST[0] = (raw, parsed)
    return parsed


_LAST: list[tuple[str, float]] = [("", 0.0)]
"""The last arrival time parsed, as text and as read (events read back from the store
come in stored order: those of one append, a source's batch, share their time)."""


@lru_cache(maxsize=64)
def _epoch_second(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text + "+00:00").timestamp()
    except ValueError:
        return None
