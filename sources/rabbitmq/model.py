"""Knative's ``RabbitmqSource`` (``sources.knative.dev/v1alpha1``), field for field,
so a Knative manifest loads unchanged.

Where to connect: Knative names a ``RabbitmqCluster`` or a connection Secret
(``rabbitmqClusterReference``), which exist only on Kubernetes. Locally the AMQP URL
comes from, in order:

1. the annotation ``eventing.local/url`` on the source (``${VAR}`` expanded from the
   environment, so ``amqp://app:${RABBITMQ_PASSWORD}@mq:5672/`` keeps the password
   out of the manifest);
2. the environment variable ``EVENTING_RABBITMQ_URL``;
3. ``amqp://guest:guest@127.0.0.1:5672/`` (RabbitMQ's own default).

``rabbitmqResourcesConfig.vhost``, when set, replaces the URL's virtual host.
The reference is accepted as written (and required only by Kubernetes).
"""

from __future__ import annotations

import os
from typing import ClassVar, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, model_validator

from eventing.resources.base import KNATIVE_SOURCES_V1ALPHA1, Model, Resource
from eventing.resources.delivery import DeliverySpec
from sources.support.source_spec import URL_ANNOTATION, BrokerSink, expand_env, max_message_bytes

URL_ENV: Final = "EVENTING_RABBITMQ_URL"
DEFAULT_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"


class LocalObjectReference(Model):
    name: str


class RabbitmqClusterReference(Model):
    name: str | None = None
    namespace: str | None = None
    connection_secret: LocalObjectReference | None = None


class RabbitmqResourcesConfig(Model):
    queue_name: str = Field(min_length=1, max_length=255)
    exchange_name: str | None = Field(default=None, min_length=1, max_length=255)
    vhost: str | None = None
    parallelism: int = Field(default=1, ge=1, le=1000)
    """Prefetch: messages in flight between RabbitMQ and the source (Knative: 1-1000,
    default 1). Events are still stored in queue order; a larger value batches."""
    predeclared: bool = False


class RabbitmqSourceSpec(Model):
    rabbitmq_cluster_reference: RabbitmqClusterReference | None = None
    rabbitmq_resources_config: RabbitmqResourcesConfig
    delivery: DeliverySpec | None = None
    sink: BrokerSink
    service_account_name: str | None = None
    adapter_container_name: str | None = Field(default=None, max_length=253)
    """Knative: the name of the adapter's container in its Deployment. There is no
    container here: accepted, ignored with a warning."""


class RabbitmqSourceResource(Resource):
    """A ``RabbitmqSource`` manifest."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (KNATIVE_SOURCES_V1ALPHA1,)
    KIND: ClassVar[str] = "RabbitmqSource"

    api_version: Literal["sources.knative.dev/v1alpha1"]
    kind: Literal["RabbitmqSource"]
    spec: RabbitmqSourceSpec

    def ignored(self) -> list[tuple[str, object, str]]:
        out: list[tuple[str, object, str]] = []
        if self.spec.adapter_container_name is not None:
            out.append(
                (
                    "spec.adapterContainerName",
                    self.spec.adapter_container_name,
                    "ignored: the adapter runs in this process, not in a container",
                )
            )
        if self.spec.service_account_name is not None:
            out.append(
                (
                    "spec.serviceAccountName",
                    self.spec.service_account_name,
                    "ignored: there are no service accounts on one machine",
                )
            )
        return out

    @property
    def config(self) -> RabbitmqResourcesConfig:
        return self.spec.rabbitmq_resources_config

    @property
    def max_message_bytes(self) -> int:
        return max_message_bytes(self.metadata)

    def url(self, environ: dict[str, str] | None = None) -> str:
        """The AMQP URL to connect to (see the module docstring). Contains secrets:
        never log it unmasked."""
        env = dict(os.environ) if environ is None else environ
        raw = self.metadata.annotations.get(URL_ANNOTATION) or env.get(URL_ENV) or DEFAULT_URL
        url = expand_env(raw, env)
        vhost = self.config.vhost
        if vhost is None:
            return url
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))

    @model_validator(mode="after")
    def _check(self) -> RabbitmqSourceResource:
        config = self.config
        if not config.predeclared and not config.exchange_name:
            raise ValueError(
                "spec.rabbitmqResourcesConfig.exchangeName is required when predeclared is "
                "false (the source declares the exchange, the queue and a binding)"
            )
        raw = self.metadata.annotations.get(URL_ANNOTATION)
        if raw is not None and not raw.startswith(("amqp://", "amqps://")):
            raise ValueError(
                f"metadata.annotations[{URL_ANNOTATION}] must be an amqp:// or amqps:// URL"
            )
        max_message_bytes(self.metadata)
        return self
