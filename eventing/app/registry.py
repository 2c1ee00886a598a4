"""The registries the composition root fills: resource kinds (for loading and
``validate``) and source adapters (for running).

A new source kind is one line in :data:`SOURCE_MODULES`: its module exports ``MODEL``
(the resource class) and ``build(resource, **deps)``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

from eventing.app.broker_classes import broker_classes
from eventing.app.dedup_config import source_dedup
from eventing.app.system import System
from eventing.broker.registry import BrokerClasses
from eventing.broker.sqlite_store import SqliteSettings
from eventing.errors import ConfigError
from eventing.resources.base import Resource
from eventing.resources.broker import Broker
from eventing.resources.configmap import ConfigMap
from eventing.resources.flowkinds import FLOW_KINDS
from eventing.resources.jobsink import JobSink
from eventing.resources.jobsink import derive_workload as derive_jobsink_workload
from eventing.resources.keda import (
    ScaledObject,
    Secret,
    TriggerAuthentication,
    derive_workload,
)
from eventing.resources.loader import KindRegistry, ResourceSet
from eventing.resources.trigger import Trigger
from eventing.resources.workload import Workload
from eventing.sourcing import Emit, Source, WebhookSource
from sources import gitlab
from sources.github import adapter as github
from sources.kafka import adapter as kafka
from sources.mqtt import adapter as mqtt
from sources.ping import adapter as ping
from sources.rabbitmq import adapter as rabbitmq
from sources.support.webhook_fields import default_webhook_path
from sources.webhook import adapter as webhook
from triggers.materialize import check_trigger

SOURCE_MODULES: tuple[ModuleType, ...] = (webhook, github, gitlab, ping, rabbitmq, kafka, mqtt)


def kind_registry(classes: BrokerClasses | None = None) -> KindRegistry:
    """Every kind this build loads; ``classes`` checks each Broker's class annotation
    (by default the classes of :func:`broker_classes`; nothing is opened to check)."""
    if classes is None:
        classes = broker_classes(SqliteSettings(Path("events.db")), process_id="validate")
    known = classes

    def check_broker(resource: Resource) -> list[tuple[str, object, str]]:
        assert isinstance(resource, Broker)
        return known.check_class(resource)

    registry = KindRegistry()
    registry.register(Broker, check=check_broker)
    registry.register(ConfigMap)
    registry.register(Trigger, check=check_trigger)
    registry.register(Workload)
    registry.register(ScaledObject)
    registry.register(TriggerAuthentication)
    registry.register(Secret)
    registry.derivations[ScaledObject.KIND] = derive_workload
    registry.register(JobSink)
    registry.derivations[JobSink.KIND] = derive_jobsink_workload
    for module in SOURCE_MODULES:
        registry.register(module.MODEL)
    for flow_kind in FLOW_KINDS:
        registry.register(flow_kind)
    registry.add_claim(webhook_path)
    return registry


WEBHOOK_MODULES: tuple[ModuleType, ...] = (webhook, github, gitlab)


def webhook_path(resource: Resource) -> list[tuple[str, str, str]]:
    """The ingress path a webhook source is served on: two sources on one path would
    leave one of them unreachable (and an HMAC-protected path served by its twin)."""
    if not any(isinstance(resource, m.MODEL) for m in WEBHOOK_MODULES):
        return []
    explicit = getattr(resource.spec, "path", None)  # type: ignore[attr-defined]
    if explicit:
        return [("webhook path", "spec.path", explicit)]
    path = default_webhook_path(resource.namespace, resource.name)
    return [("webhook path", "metadata.name", path)]


def build_sources(
    resources: ResourceSet, system: System, data_dir: Path
) -> list[tuple[Source | WebhookSource, Emit]]:
    built: list[tuple[Source | WebhookSource, Emit]] = []
    for module in SOURCE_MODULES:
        for resource in resources.of(module.MODEL):
            sink = resource.spec.sink
            ref = getattr(sink, "ref", None)
            if ref is None or ref.kind != "Broker":  # the loader rewrote every other sink
                raise ConfigError(
                    f"{resource.kind}/{resource.name}: spec.sink was not resolved to a broker"
                )
            key = f"{ref.namespace or resource.namespace}/{ref.name}"
            if key not in system.brokers:
                raise ConfigError(f"{resource.kind}/{resource.name}: no Broker {key}")
            deps = _deps(module, data_dir)
            dedup = source_dedup(system.brokers[key], resource)
            built.append((module.build(resource, **deps), system.emitter(key, dedup)))
    return built


def _deps(module: ModuleType, data_dir: Path) -> dict[str, Any]:
    params = inspect.signature(module.build).parameters
    offered: dict[str, Any] = {"state_dir": data_dir / "sources", "data_dir": data_dir}
    return {k: v for k, v in offered.items() if k in params}
