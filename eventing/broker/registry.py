"""The typed registry of broker classes, keyed by Knative's class annotation
(``eventing.knative.dev/broker.class``).

The core knows no concrete class: the composition root registers each one (embedded,
in-memory, and the plugin classes in ``brokers/``) with the names it answers to, and
the system asks the registry to check and build each Broker resource. A new class is
one :meth:`BrokerClasses.register` call, not a branch in the wiring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from eventing.broker.base import Broker
from eventing.errors import ConfigError
from eventing.resources.base import BROKER_CLASS_ANNOTATION
from eventing.resources.broker import EMBEDDED
from eventing.resources.broker import Broker as BrokerResource

#: A broker's class configuration: the ``data`` of the ConfigMap its ``spec.config``
#: names (empty when it names none).
BrokerConfig = Mapping[str, str]


class BrokerClass(Protocol):
    """How to check and build the brokers of one class."""

    name: str
    """The canonical class name (the annotation's value)."""
    aliases: tuple[str, ...]
    """Other annotation values that mean this class (Knative's names)."""

    def check(self, model: BrokerResource, config: BrokerConfig) -> Iterable[tuple[str, str]]:
        """Problems with this broker's configuration: (config key, message) pairs."""

    def build(self, model: BrokerResource, config: BrokerConfig) -> Broker:
        """A broker of this class, not yet opened (nothing connects here)."""


@dataclass
class BrokerClasses:
    classes: dict[str, BrokerClass] = field(default_factory=dict)

    def register(self, broker_class: BrokerClass) -> None:
        for name in (broker_class.name, *broker_class.aliases):
            if name in self.classes:
                raise ValueError(f"broker class {name!r} is registered twice")
            self.classes[name] = broker_class

    def names(self) -> list[str]:
        return sorted(self.classes)

    def of(self, model: BrokerResource) -> BrokerClass:
        raw = model.metadata.annotations.get(BROKER_CLASS_ANNOTATION, EMBEDDED)
        found = self.classes.get(raw)
        if found is None:
            raise ConfigError(
                f"Broker {model.key}: metadata.annotations[{BROKER_CLASS_ANNOTATION}] = "
                f"{raw!r} is not a known broker class (allowed: {', '.join(self.names())})"
            )
        return found

    def check_class(self, model: BrokerResource) -> list[tuple[str, object, str]]:
        """The load-time check of the annotation (for ``eventing validate``)."""
        raw = model.metadata.annotations.get(BROKER_CLASS_ANNOTATION, EMBEDDED)
        if raw in self.classes:
            return []
        return [
            (
                f"metadata.annotations[{BROKER_CLASS_ANNOTATION}]",
                raw,
                f"not a known broker class (allowed: {', '.join(self.names())})",
            )
        ]

    def build(self, model: BrokerResource, config: BrokerConfig) -> Broker:
        broker_class = self.of(model)
        problems = [f"{key}: {message}" for key, message in broker_class.check(model, config)]
        if problems:
            raise ConfigError(
                f"Broker {model.key} (class {broker_class.name}): " + "; ".join(problems)
            )
        return broker_class.build(model, config)
