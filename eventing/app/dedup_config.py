"""Deduplication settings from the manifest, applied to the brokers and the sources'
emitters (the composition root's part of :mod:`eventing.broker.dedup`).

Which source kinds deduplicate by default is decided here, by kind: those whose event
ids come from upstream and stay the same on a redelivery (GitHub's delivery id,
GitLab's event UUID, an AMQP ``message_id``, a Kafka record's partition and offset).
A source may still mark single events as not deduplicable (``event.dedup = ""``: a
RabbitMQ message without ``message_id`` gets an id hashed from its content, which two
different messages can share); ``eventing.local/dedup: "true"`` on the source
deduplicates those too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from eventing.broker.base import Broker
from eventing.broker.dedup import DedupWindow
from eventing.resources.base import Resource
from eventing.resources.broker import Broker as BrokerResource
from eventing.resources.dedup import dedup_settings

#: Source kinds whose ids come from upstream: deduplicated unless their annotation says no.
UPSTREAM_ID_KINDS: Final = frozenset(
    {"GitHubSource", "GitLabSource", "RabbitmqSource", "KafkaSource"}
)


@dataclass(frozen=True, slots=True)
class SourceDedup:
    """How a source's emitter marks its events."""

    scope: str
    """The source's window in its broker; ``""``: its events are never deduplicated."""
    forced: bool = False
    """Deduplicate even the events the source marked as not deduplicable."""

    def mark(self, event_dedup: str | None) -> str:
        if not self.scope:
            return ""
        if event_dedup == "" and not self.forced:
            return ""
        return self.scope


def configure_broker(broker: Broker, model: BrokerResource) -> None:
    """Apply a Broker's annotations to its deduplicator (before it opens)."""
    settings = dedup_settings(model.metadata.annotations)
    broker.dedup.configure(
        settings.window(DedupWindow()),
        ingress=settings.ingress is True,
        enabled=settings.enabled is not False,
    )


def source_dedup(broker: Broker, resource: Resource) -> SourceDedup:
    """Declare ``resource``'s scope in ``broker`` when it deduplicates."""
    settings = dedup_settings(resource.metadata.annotations)
    enabled = settings.enabled
    if enabled is None:
        enabled = resource.kind in UPSTREAM_ID_KINDS
    if not enabled:
        return SourceDedup("")
    scope = f"{resource.kind}/{resource.key}"
    broker.dedup.scope(scope, settings.window(broker.dedup.window))
    return SourceDedup(scope, forced=settings.enabled is True)
