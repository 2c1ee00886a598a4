"""Knative's ``DeliverySpec`` (retry, backoff, timeout, dead-letter sink) plus our
additions for ordering and concurrency.

Knative's fields keep Knative's names and meaning: ``retry: N`` is N retries after
the first attempt; ``backoffPolicy`` ``exponential`` waits ``backoffDelay * 2^n``,
``linear`` waits ``backoffDelay * n``. Our additions (not in Knative; all optional):
``jitter``, ``ordering``, ``maxInFlight``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from eventing.resources.base import Destination, Model
from eventing.resources.durations import Duration


class DeliverySpec(Model):
    dead_letter_sink: Destination | None = None
    retry: int | None = Field(default=None, ge=0, le=1000)
    backoff_policy: Literal["exponential", "linear"] | None = None
    backoff_delay: Duration | None = Field(default=None, ge=0)
    timeout: Duration | None = Field(default=None, gt=0)
    retry_after_max: Duration | None = Field(default=None, ge=0)
    format: Literal["json", "binary"] | None = None
    # Ours, not Knative's:
    jitter: float | None = Field(default=None, ge=0, le=1)
    """Fraction of each backoff added or removed at random (default 0.2)."""
    ordering: Literal["unordered", "ordered"] | None = None
    """``ordered`` delivers events with the same ``partitionkey`` one at a time, in
    arrival order, without blocking other keys."""
    max_in_flight: int | None = Field(default=None, ge=1, le=10000)
    """Upper bound on concurrent deliveries for the trigger (default 100)."""


def merge(primary: DeliverySpec | None, fallback: DeliverySpec | None) -> DeliverySpec:
    """Trigger delivery wins, field by field, over the broker's (Knative's rule is
    all-or-nothing per spec; field-wise merge gives the same result when a trigger
    sets a whole spec and a useful one when it sets one field)."""
    if primary is None:
        return fallback or DeliverySpec()
    if fallback is None:
        return primary
    # model_copy, not model_validate: the values are already parsed (durations are
    # seconds now) and must not go through the YAML validators again.
    inherited = {
        name: getattr(fallback, name)
        for name in DeliverySpec.model_fields
        if getattr(primary, name) is None and getattr(fallback, name) is not None
    }
    return primary.model_copy(update=inherited)
