"""Retry policy as pure functions, with Knative's status table as a comment table.

==========  ===========================================  =====
status      meaning                                      retry
==========  ===========================================  =====
2xx         accepted (200 may carry a reply)             no
1xx, 3xx    reserved: treated as an error                no
400         unparsable event                             no
401, 403    not authorised / not allowed                 no
404         endpoint does not exist (yet)                yes
408         timeout                                      yes
409         processing in progress                       yes
429         overloaded                                   yes
other 4xx   error                                        no
5xx         error                                        yes
other       not in the table (e.g. 600)                  yes
network     no response (connect error, timeout)         yes
==========  ===========================================  =====

Backoff: ``exponential`` waits ``delay * 2^n`` and ``linear`` ``delay * n`` before
retry ``n`` (1-based), as Knative does; we add jitter (Knative has none) so that
retries of many events spread out, and honour a subscriber's ``Retry-After`` (capped
by ``retryAfterMax``) by default.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from eventing.resources.delivery import DeliverySpec

_RETRYABLE_4XX = frozenset({404, 408, 409, 429})


def is_success(status: int) -> bool:
    return 200 <= status < 300


def is_retryable(status: int | None) -> bool:
    """Whether a failed attempt (``status`` None = network error) may be retried."""
    if status is None:
        return True
    if status < 100 or status >= 600:
        return True
    if status >= 500:
        return True
    return status in _RETRYABLE_4XX


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retry: int = 10
    backoff_policy: Literal["exponential", "linear"] = "exponential"
    backoff_delay: float = 0.2
    timeout: float = 60.0
    retry_after_max: float = 300.0
    jitter: float = 0.2
    structured: bool = False
    ordered: bool = False
    max_in_flight: int = 100

    @classmethod
    def from_spec(cls, spec: DeliverySpec) -> RetryPolicy:
        base = cls()
        return cls(
            retry=base.retry if spec.retry is None else spec.retry,
            backoff_policy=spec.backoff_policy or base.backoff_policy,
            backoff_delay=base.backoff_delay if spec.backoff_delay is None else spec.backoff_delay,
            timeout=spec.timeout or base.timeout,
            retry_after_max=base.retry_after_max
            if spec.retry_after_max is None
            else spec.retry_after_max,
            jitter=base.jitter if spec.jitter is None else spec.jitter,
            structured=spec.format == "json",
            ordered=spec.ordering == "ordered",
            max_in_flight=spec.max_in_flight or base.max_in_flight,
        )

    def backoff(
        self, retry_number: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        n = max(1, retry_number)
        if self.backoff_policy == "linear":
            delay = self.backoff_delay * n
        else:
            delay = self.backoff_delay * (2 ** min(n, 32))
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            delay = max(0.0, delay * (1 + spread))
        if retry_after is not None and self.retry_after_max > 0:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return min(delay, 3600.0)


@lru_cache(maxsize=4096)
def shared(policy: RetryPolicy) -> RetryPolicy:
    """One object for every equal policy (policies are frozen values: the cache hands
    back the first equal one it was given). Why: with a thousand triggers of the same
    delivery spec, each dispatcher reads its policy for every event; one shared object
    stays in the CPU's caches where a thousand equal copies would each be a cold read.
    Called when a dispatcher is made, not per event; bounded by the cache's size."""
    return policy


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
