"""``MqttSource`` (``eventing.local/v1alpha1``): our own kind, since Knative has no MQTT
source beyond a QoS 0 prototype.

It subscribes with a persistent session (MQTT 5 ``clean_start`` false with a session
expiry, or MQTT 3.1.1 ``clean_session`` false) under a fixed client id, so messages
that arrive while the source is down, and messages it received but did not
acknowledge, are delivered again when it reconnects. See docs/sources.md.
"""

from __future__ import annotations

import os
from typing import Annotated, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from eventing.resources.base import OUR_API, Model, Resource
from eventing.resources.durations import Duration
from sources.support.source_spec import (
    BrokerSink,
    CloudEventOverrides,
    expand_env,
    max_message_bytes,
)


def _topic_filter(value: str) -> str:
    if not value or "\x00" in value or len(value.encode()) > 65535:
        raise ValueError("a topic filter is 1 to 65535 bytes of UTF-8 without NUL")
    levels = value.split("/")
    body = levels[2:] if value.startswith("$share/") else levels
    if value.startswith("$share/") and (len(levels) < 3 or not levels[1]):
        raise ValueError("a shared subscription is $share/<group>/<filter>")
    for index, level in enumerate(body):
        if "#" in level and (level != "#" or index != len(body) - 1):
            raise ValueError("'#' must be a whole level and the last one (sensors/#)")
        if "+" in level and level != "+":
            raise ValueError("'+' must be a whole level (sensors/+/temp)")
    return value


def _protocol(value: object) -> object:
    return str(value) if isinstance(value, int | float) else value


TopicFilter = Annotated[str, AfterValidator(_topic_filter)]


class MqttSourceSpec(Model):
    url: str = "mqtt://127.0.0.1:1883"
    """``mqtt://[user:password@]host[:port]`` or ``mqtts://``; ``${VAR}`` is expanded."""
    topics: list[TopicFilter] = Field(min_length=1)
    qos: Literal[0, 1] = 1
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    protocol_version: Annotated[Literal["5", "3.1.1"], BeforeValidator(_protocol)] = "5"
    session_expiry: Duration = Field(default=86400.0, gt=0, le=4294967295)
    keep_alive: Duration = Field(default=30.0, ge=5, le=65535)
    receive_maximum: int = Field(default=100, ge=1, le=65535)
    sink: BrokerSink
    ce_overrides: CloudEventOverrides | None = None


class MqttSourceResource(Resource):
    """An ``MqttSource`` manifest."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (OUR_API,)
    KIND: ClassVar[str] = "MqttSource"

    api_version: Literal["eventing.local/v1alpha1"]
    kind: Literal["MqttSource"]
    spec: MqttSourceSpec

    @property
    def client_id(self) -> str:
        return self.spec.client_id or f"eventing-{self.namespace}-{self.name}"

    @property
    def max_message_bytes(self) -> int:
        return max_message_bytes(self.metadata)

    def endpoint(
        self, environ: dict[str, str] | None = None
    ) -> tuple[str, int, str | None, str | None, bool]:
        """(host, port, username, password, tls) from ``spec.url``. Contains secrets."""
        env = dict(os.environ) if environ is None else environ
        parts = urlsplit(expand_env(self.spec.url, env))
        tls = parts.scheme == "mqtts"
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return parts.hostname or "", parts.port or (8883 if tls else 1883), user, password, tls

    @model_validator(mode="after")
    def _check(self) -> MqttSourceResource:
        parts = urlsplit(self.spec.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("spec.url must be mqtt://host[:port] or mqtts://host[:port]")
        max_message_bytes(self.metadata)
        return self
