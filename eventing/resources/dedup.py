"""The deduplication settings a Broker or a source carries as annotations.

Why annotations: Knative's Broker, KafkaSource and RabbitmqSource manifests must keep
loading unchanged and keep applying to a cluster running Knative, which ignores
annotations it does not know; our source kinds use the same keys so there is one way
to say it everywhere (docs/reference.md, "Deduplication"):

``eventing.local/dedup``
    ``"true"``/``"false"``. On a Broker, ``false`` turns deduplication off for every
    event it receives. On a source, it overrides the kind's default (on for sources
    whose ids come from upstream: GitHub, GitLab, RabbitMQ, Kafka).
``eventing.local/dedup-ingress``
    Broker only: ``"true"`` also deduplicates plain POSTs to the broker and replies
    (default ``false``, as Knative, which does not deduplicate).
``eventing.local/dedup-window``
    ISO-8601 duration: how long a key is remembered (default ``PT1H``).
``eventing.local/dedup-max-ids``
    How many keys are remembered at most (default 100000): memory stays bounded.

A source without a window of its own uses its broker's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from eventing.broker.dedup import MAX_MAX_IDS, MAX_SECONDS, DedupWindow
from eventing.resources.durations import parse_duration

DEDUP: Final = "eventing.local/dedup"
DEDUP_INGRESS: Final = "eventing.local/dedup-ingress"
DEDUP_WINDOW: Final = "eventing.local/dedup-window"
DEDUP_MAX_IDS: Final = "eventing.local/dedup-max-ids"
ANNOTATIONS: Final = (DEDUP, DEDUP_INGRESS, DEDUP_WINDOW, DEDUP_MAX_IDS)


@dataclass(frozen=True, slots=True)
class DedupSettings:
    """What one resource's annotations say; ``None`` where they say nothing."""

    enabled: bool | None = None
    ingress: bool | None = None
    seconds: float | None = None
    max_ids: int | None = None

    def window(self, base: DedupWindow) -> DedupWindow:
        """``base`` with what these settings override."""
        return DedupWindow(
            self.max_ids if self.max_ids is not None else base.max_ids,
            self.seconds if self.seconds is not None else base.seconds,
        )


def _flag(annotations: Mapping[str, str], key: str) -> bool | None:
    raw = annotations.get(key)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"annotations[{key}] = {raw[:40]!r} must be 'true' or 'false'")
    return value == "true"


def dedup_settings(annotations: Mapping[str, str]) -> DedupSettings:
    """Parse the deduplication annotations; ``ValueError`` names the bad one."""
    seconds: float | None = None
    raw = annotations.get(DEDUP_WINDOW)
    if raw is not None:
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            raise ValueError(f"annotations[{DEDUP_WINDOW}]: {exc}") from None
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(
                f"annotations[{DEDUP_WINDOW}] = {raw[:40]!r} must be more than 0 and at "
                f"most {MAX_SECONDS / 86400:g} days"
            )
    max_ids: int | None = None
    raw = annotations.get(DEDUP_MAX_IDS)
    if raw is not None:
        if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_MAX_IDS:
            raise ValueError(
                f"annotations[{DEDUP_MAX_IDS}] = {raw[:40]!r} must be a whole number from 1 "
                f"to {MAX_MAX_IDS}"
            )
        max_ids = int(raw)
    return DedupSettings(
        _flag(annotations, DEDUP), _flag(annotations, DEDUP_INGRESS), seconds, max_ids
    )
