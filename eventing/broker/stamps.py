"""Extensions the broker adds on the way in: arrival time and the hop TTL.

``knativearrivaltime`` is set on every event the ingress accepts (RFC 3339, UTC).
``knativebrokerttl`` stops reply loops: an event arriving without one gets
:data:`MAX_TTL`; one arriving with TTL <= 0 is refused (400); each reply carries its
parent's TTL minus one (see the dispatcher), so a loop ends after 255 hops. Knative
uses the same names and default, so events moving between the two keep their budget.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from eventing.errors import InvalidEventError
from eventing.events import ARRIVAL_TIME, TTL, Event

MAX_TTL: Final = 255


@lru_cache(maxsize=4)
def _second_prefix(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with microseconds (the formatted second is cached:
    this runs once per accepted event)."""
    now = time.time()
    second = int(now)
    return f"{_second_prefix(second)}.{int((now - second) * 1_000_000):06d}Z"


def stamp(event: Event, arrival: str) -> None:
    """Set the arrival time and check/default the TTL; raise if the TTL is spent."""
    raw = event.attributes.get(TTL)
    if raw is None:
        event.attributes[TTL] = str(MAX_TTL)
    else:
        try:
            ttl = int(raw)
        except (TypeError, ValueError):
            raise InvalidEventError(f"{TTL} = {str(raw)[:20]!r} is not an integer") from None
        if ttl <= 0:
            raise InvalidEventError(
                f"{TTL} is {ttl}: the event's hop budget is spent (a reply loop?)"
            )
    event.attributes[ARRIVAL_TIME] = arrival
