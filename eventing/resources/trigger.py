"""Knative ``Trigger``: legacy ``filter.attributes`` and the ``filters`` array of
Subscriptions API dialects (exact, prefix, suffix, all, any, not, cesql).

Filter keys follow Knative's admission rules: lowercase a-z and 0-9 only, at most 20
characters. CESQL expressions are checked by the ``triggers`` package when the
resources are loaded (the core does not parse CESQL itself).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from eventing.resources.base import (
    KNATIVE_EVENTING,
    Destination,
    KReference,
    Model,
    Name,
    Resource,
)
from eventing.resources.delivery import DeliverySpec
from eventing.resources.split import Subscriber

_KEY = re.compile(r"[a-z0-9]{1,20}\Z")


def _check_keys(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not _KEY.match(key):
            raise ValueError(
                f"attribute name {key!r} is invalid: lowercase a-z and 0-9 only, 1 to 20 characters"
            )
    return value


AttributeMap = Annotated[dict[str, str], AfterValidator(_check_keys)]


class TriggerFilter(Model):
    """Legacy filter: every listed attribute must equal the value ("" matches any)."""

    attributes: AttributeMap = Field(default_factory=dict)


class SubscriptionsAPIFilter(Model):
    """One filter of the ``filters`` array: exactly one dialect is set."""

    exact: AttributeMap | None = None
    prefix: AttributeMap | None = None
    suffix: AttributeMap | None = None
    all: list[SubscriptionsAPIFilter] | None = None
    any: list[SubscriptionsAPIFilter] | None = None
    not_: SubscriptionsAPIFilter | None = Field(default=None, alias="not")
    cesql: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SubscriptionsAPIFilter:
        present = [name for name in self.dialects() if self.dialect_value(name) is not None]
        if len(present) != 1:
            raise ValueError(
                "a filter needs exactly one dialect of exact, prefix, suffix, all, any, not, "
                f"cesql; got {', '.join(present) or 'none'}"
            )
        for name in ("exact", "prefix", "suffix"):
            value = self.dialect_value(name)
            if isinstance(value, dict) and not value:
                raise ValueError(f"'{name}' needs at least one attribute")
        return self

    @staticmethod
    def dialects() -> tuple[str, ...]:
        return ("exact", "prefix", "suffix", "all", "any", "not", "cesql")

    def dialect_value(self, name: str) -> object:
        return self.not_ if name == "not" else getattr(self, name)

    @property
    def dialect(self) -> str:
        return next(n for n in self.dialects() if self.dialect_value(n) is not None)


class TriggerSpec(Model):
    broker: Name | None = None
    broker_ref: KReference | None = None
    """Knative's newer form (``cross-namespace-event-links``): a ref to the Broker,
    possibly in another namespace. One of ``broker`` and ``brokerRef`` is required."""
    filter: TriggerFilter | None = None
    filters: list[SubscriptionsAPIFilter] = Field(default_factory=list)
    subscriber: Subscriber
    """One destination, or ``split``: a weighted list of them (a canary; see
    :mod:`eventing.resources.split`)."""
    delivery: DeliverySpec | None = None

    @model_validator(mode="after")
    def _one_broker(self) -> TriggerSpec:
        if self.broker is None and self.broker_ref is None:
            raise ValueError("needs 'broker' (a Broker's name) or 'brokerRef'")
        ref = self.broker_ref
        if ref is not None:
            if ref.kind != "Broker" or ref.api_version not in (None, KNATIVE_EVENTING):
                raise ValueError(f"brokerRef must name a Broker ({KNATIVE_EVENTING})")
            if self.broker is not None and self.broker != ref.name:
                raise ValueError(
                    f"broker {self.broker!r} and brokerRef {ref.name!r} name different brokers"
                )
        return self

    @model_validator(mode="after")
    def _subscriber_not_dlq(self) -> TriggerSpec:
        if any(t.uri == "dlq:" and t.ref is None for t in self.subscriber.targets):
            raise ValueError(
                "subscriber uri 'dlq:' is only valid as a deadLetterSink; use http(s)://, "
                "log:, or a ref to a Workload"
            )
        return self


class Trigger(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (KNATIVE_EVENTING,)
    KIND: ClassVar[str] = "Trigger"

    api_version: Literal["eventing.knative.dev/v1"]
    kind: Literal["Trigger"]
    spec: TriggerSpec

    @property
    def broker_key(self) -> str:
        """``namespace/name`` of the Broker (``brokerRef`` may name another namespace)."""
        ref = self.spec.broker_ref
        if ref is not None:
            return f"{ref.namespace or self.namespace}/{ref.name}"
        return f"{self.namespace}/{self.spec.broker}"

    @property
    def broker_name(self) -> str:
        return self.broker_key.split("/", 1)[1]


class InternalTrigger(Trigger):
    """A trigger made by expansion (a Subscription, a step of a Sequence, a source's
    non-broker sink), never read from YAML. Unlike a Knative Trigger, whose replies
    go back into its own broker, its replies go to ``reply`` (a ref to a broker, set
    by the expansion) or, without one, are dropped, as Knative's Subscription does."""

    reply: Destination | None = None
