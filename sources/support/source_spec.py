"""Resource-model pieces shared by the broker-consuming sources (Kafka, RabbitMQ, MQTT).

Why here and not in each adapter: Knative's source duck type (``sink`` plus
``ceOverrides``) is the same for every source, and so are our two local extensions,
which live in annotations so that a Knative manifest still loads unchanged and our
manifests still apply to a Kubernetes cluster running Knative:

``eventing.local/url``
    Where to connect when the Knative field is Kubernetes-only (RabbitmqSource's
    ``rabbitmqClusterReference``). ``${VAR}`` references are expanded from the
    process environment when the source is built, so passwords stay out of manifests.
``eventing.local/max-message-bytes``
    The largest upstream message accepted (default 1 MiB); larger ones are refused
    (counted in ``health.refused``, never retried).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Final

from pydantic import AfterValidator, Field

from eventing.errors import ConfigError
from eventing.events import AttributeValue, is_valid_name
from eventing.resources.base import KNATIVE_EVENTING, Destination, Metadata, Model

URL_ANNOTATION: Final = "eventing.local/url"
MAX_BYTES_ANNOTATION: Final = "eventing.local/max-message-bytes"
DEFAULT_MAX_MESSAGE_BYTES: Final = 1024 * 1024
MAX_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _sink(dest: Destination) -> Destination:
    ref = dest.ref
    if ref is not None and ref.kind == "Broker" and ref.api_version not in (None, KNATIVE_EVENTING):
        raise ValueError(f"a ref to a Broker takes apiVersion {KNATIVE_EVENTING}")
    return dest


#: ``spec.sink``: any destination, as in Knative. A ref to a Broker is published into
#: directly; anything else (a URL, ``log:``, a Workload, a Sequence) is reached through
#: an internal broker the loader adds (:mod:`eventing.resources.flows`), so a source
#: always stores what it emits before acknowledging upstream.
BrokerSink = Annotated[Destination, AfterValidator(_sink)]


def _extension_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not is_valid_name(name):
            raise ValueError(
                f"extension name {name[:40]!r} is invalid: lowercase a-z and 0-9, "
                "1 to 20 characters"
            )
    return value


class CloudEventOverrides(Model):
    """Knative's ``ceOverrides``: extensions set on every event the source emits."""

    extensions: Annotated[dict[str, str], AfterValidator(_extension_names)] = Field(
        default_factory=dict
    )


def apply_overrides(
    attributes: dict[str, AttributeValue], overrides: CloudEventOverrides | None
) -> None:
    """Set the override extensions on ``attributes`` (Knative: overrides win)."""
    if overrides is not None:
        attributes.update(overrides.extensions)


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` with the environment variable; a missing one is a ConfigError."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"environment variable {name} (referenced in a URL) is not set")
        return env[name]

    return _ENV_REF.sub(substitute, value)


def max_message_bytes(metadata: Metadata) -> int:
    """The ``eventing.local/max-message-bytes`` annotation, or the 1 MiB default."""
    raw = metadata.annotations.get(MAX_BYTES_ANNOTATION)
    if raw is None:
        return DEFAULT_MAX_MESSAGE_BYTES
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_MAX_MESSAGE_BYTES:
        raise ValueError(
            f"metadata.annotations[{MAX_BYTES_ANNOTATION}] = {raw[:40]!r} must be a whole "
            f"number of bytes from 1 to {MAX_MAX_MESSAGE_BYTES}"
        )
    return int(raw)


def source_path(namespace: str, plural: str, name: str) -> str:
    """Knative's source attribute stem: ``/apis/v1/namespaces/<ns>/<plural>/<name>``."""
    return f"/apis/v1/namespaces/{namespace}/{plural}/{name}"
