"""Knative's routing kinds: ``Channel``/``InMemoryChannel`` and ``Subscription``
(``messaging.knative.dev/v1``), ``Sequence`` and ``Parallel`` (``flows.knative.dev/v1``),
field for field, so their manifests load unchanged.

None of them runs code of its own: :mod:`eventing.resources.flows` expands each into
internal Brokers and Triggers (Knative builds them from Channels and Subscriptions the
same way). Each addressable kind names the internal broker that is its address
(``address_key``), with Knative's own child names: a Sequence ``s`` is reached at
``/<ns>/s-kn-sequence-0``, a Parallel ``p`` at ``/<ns>/p-kn-parallel``, a Channel ``c``
at ``/<ns>/c-kn-channel``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from eventing.resources.base import Destination, KReference, Model, Resource
from eventing.resources.delivery import DeliverySpec
from eventing.resources.names import child_name

MESSAGING_V1 = "messaging.knative.dev/v1"
FLOWS_V1 = "flows.knative.dev/v1"
MAX_STEPS = 64


class ChannelTemplate(Model):
    """Which channel implementation Knative would create; accepted and ignored here
    (every channel is an internal broker of the default class)."""

    api_version: str | None = None
    kind: str | None = None
    spec: dict[str, Any] | None = None


class ChannelSpec(Model):
    channel_template: ChannelTemplate | None = None
    delivery: DeliverySpec | None = None


class Channel(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (MESSAGING_V1,)
    KIND: ClassVar[str] = "Channel"

    api_version: Literal["messaging.knative.dev/v1"]
    kind: Literal["Channel"]
    spec: ChannelSpec = ChannelSpec()

    @property
    def address_key(self) -> str:
        return f"{self.namespace}/{child_name(self.name, '-kn-channel')}"


class InMemoryChannelSpec(Model):
    delivery: DeliverySpec | None = None


class InMemoryChannel(Resource):
    """Knative's in-memory channel. Here it is an internal broker of the default
    (durable) class: stronger than Knative's, which loses events on a restart."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (MESSAGING_V1,)
    KIND: ClassVar[str] = "InMemoryChannel"

    api_version: Literal["messaging.knative.dev/v1"]
    kind: Literal["InMemoryChannel"]
    spec: InMemoryChannelSpec = InMemoryChannelSpec()

    @property
    def address_key(self) -> str:
        return f"{self.namespace}/{child_name(self.name, '-kn-channel')}"


class SubscriptionSpec(Model):
    channel: KReference
    subscriber: Destination | None = None
    reply: Destination | None = None
    delivery: DeliverySpec | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> SubscriptionSpec:
        if self.subscriber is None and self.reply is None:
            raise ValueError("needs 'subscriber' or 'reply' (or both)")
        return self


class Subscription(Resource):
    """Every event of ``channel`` goes to ``subscriber``; its reply goes to ``reply``
    (dropped without one). Without a subscriber, events go straight to ``reply``."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (MESSAGING_V1,)
    KIND: ClassVar[str] = "Subscription"

    api_version: Literal["messaging.knative.dev/v1"]
    kind: Literal["Subscription"]
    spec: SubscriptionSpec


class SequenceStep(Destination):
    """A step: a destination plus its own delivery spec (retries, dead-letter sink)."""

    delivery: DeliverySpec | None = None


class SequenceSpec(Model):
    steps: list[SequenceStep] = Field(min_length=1, max_length=MAX_STEPS)
    channel_template: ChannelTemplate | None = None
    reply: Destination | None = None


class Sequence(Resource):
    """Each step's reply is the next step's input; the last step's reply goes to
    ``spec.reply`` (dropped without one). A step that answers without an event ends
    that event's way through the sequence."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (FLOWS_V1,)
    KIND: ClassVar[str] = "Sequence"

    api_version: Literal["flows.knative.dev/v1"]
    kind: Literal["Sequence"]
    spec: SequenceSpec

    def step_broker(self, index: int) -> str:
        return child_name(self.name, f"-kn-sequence-{index}")

    @property
    def address_key(self) -> str:
        return f"{self.namespace}/{self.step_broker(0)}"


class ParallelBranch(Model):
    filter: Destination | None = None
    """Knative's filter: a service that answers with the event to let it through (a
    2xx without an event drops it for this branch)."""
    subscriber: Destination
    reply: Destination | None = None
    """Where this branch's replies go (default: the Parallel's ``reply``)."""
    delivery: DeliverySpec | None = None


class ParallelSpec(Model):
    branches: list[ParallelBranch] = Field(min_length=1, max_length=MAX_STEPS)
    channel_template: ChannelTemplate | None = None
    reply: Destination | None = None


class Parallel(Resource):
    """Every event goes to every branch (through its filter, if any); each branch's
    reply goes to the branch's ``reply`` or else the Parallel's."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (FLOWS_V1,)
    KIND: ClassVar[str] = "Parallel"

    api_version: Literal["flows.knative.dev/v1"]
    kind: Literal["Parallel"]
    spec: ParallelSpec

    @property
    def ingress_broker(self) -> str:
        return child_name(self.name, "-kn-parallel")

    def branch_broker(self, index: int) -> str:
        return child_name(self.name, f"-kn-parallel-{index}")

    @property
    def address_key(self) -> str:
        return f"{self.namespace}/{self.ingress_broker}"


FLOW_KINDS: tuple[type[Resource], ...] = (
    Channel,
    InMemoryChannel,
    Subscription,
    Sequence,
    Parallel,
)
