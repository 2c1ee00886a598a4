"""The sources the reconciler starts and stops while the system runs (a source added,
changed or deleted in the manifests): an adapter is a supervised task, stopped by
cancelling it (what it had not acknowledged stays with its server and comes again to
the adapter built next); a webhook source is an entry in the ingress's path table,
moved at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from eventing.app.registry import build_sources
from eventing.errors import ConfigError
from eventing.resources.base import Resource
from eventing.resources.loaded import ResourceSet
from eventing.sourcing import Source, WebhookSource

if TYPE_CHECKING:
    from eventing.app.runtime import Running

logger = logging.getLogger(__name__)

#: (kind, namespace/name) of a resource.
Ident = tuple[str, str]
SOURCES = "sources"
TASK_STOP = 10.0


@dataclass
class LiveSources:
    running_system: Running
    data_dir: Path
    running: dict[Ident, Source | WebhookSource] = field(default_factory=dict)
    """The source built from each resource."""

    def webhooks(self) -> list[WebhookSource]:
        return [s for s in self.running.values() if isinstance(s, WebhookSource)]

    async def start(self, ident: Ident, model: Resource) -> None:
        running = self.running_system
        [(source, emit)] = build_sources(
            ResourceSet(resources=[model]), running.system, self.data_dir
        )
        if isinstance(source, WebhookSource):
            if running.workers is not None:
                raise ConfigError(
                    f"{model.kind} {model.key}: a webhook source changed while running "
                    "needs a restart with --ingress-workers"
                )
            running.ingress.webhooks[source.path] = (source, emit)
        else:
            from eventing.app.runtime import _bind, _health_error

            running.supervisor.spawn(
                f"source {source.name}",
                _bind(source.run, emit),
                group=SOURCES,
                restart=True,
                on_error=_health_error(source),
            )
        self.running[ident] = source
        running.sources.append(source)
        logger.info("source %s started", source.name)

    async def stop(self, ident: Ident) -> None:
        running = self.running_system
        source = self.running.pop(ident, None)
        if source is None:
            return
        if isinstance(source, WebhookSource):
            running.ingress.webhooks.pop(source.path, None)
        else:
            await running.supervisor.cancel(f"source {source.name}", TASK_STOP)
        if source in running.sources:
            running.sources.remove(source)
        logger.info("source %s stopped", source.name)
