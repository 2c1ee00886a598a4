"""KEDA import: a ``ScaledObject`` (``keda.sh/v1alpha1``) loads as a :class:`Workload`
that scales its ``scaleTargetRef`` on the same queue, so KEDA users switch with their
manifests unchanged.

What maps (KEDA's defaults where a field is absent, so a manifest means the same):

- ``scaleTargetRef`` -> ``spec.scaleTargetRef`` (any resource with a scale subresource);
- ``minReplicaCount`` (0), ``maxReplicaCount`` (100) -> ``minReplicas``/``maxReplicas``;
- ``cooldownPeriod`` (300 s) -> a fixed keep-alive of that many seconds;
- ``advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds``
  (300 s, the HPA's default) -> ``stabilizationWindowSeconds``;
- ``pollingInterval`` (30 s) -> how often the external metric is read;
- triggers ``rabbitmq`` (mode ``QueueLength``: ``queueName``, ``host`` or ``protocol:
  http``, ``value`` 20, ``activationValue`` 0) and ``kafka`` (``bootstrapServers``,
  ``consumerGroup``, ``topic``, ``lagThreshold`` 10, ``activationLagThreshold`` 0,
  ``offsetResetPolicy`` latest) -> ``externalMetrics``, with ``value``/``lagThreshold``
  as ``targetPerReplica`` and the activation value as ``activationThreshold``;
- ``authenticationRef`` -> a ``TriggerAuthentication`` whose ``secretTargetRef`` entries
  fill trigger parameters from a ``Secret`` (``v1``, ``data`` base64 or ``stringData``)
  in the same namespace, loaded from the same directory.

Anything else that changes behaviour (other trigger types, other RabbitMQ modes,
``fallback``, ``idleReplicaCount``, ``scalingModifiers``, Kafka SASL/TLS parameters,
``hostFromEnv``) is an error that names it, never silently ignored. Secret values never
appear in an error message.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError

from eventing.resources.base import Model, Name, Resource
from eventing.resources.workload import ScaleTargetRef, Workload

KEDA_API = "keda.sh/v1alpha1"
TRIGGER_TYPES = ("kafka", "rabbitmq")
KEDA_COOLDOWN = 300.0
KEDA_STABILIZATION = 300.0
KEDA_POLLING = 30.0
RABBITMQ_DEFAULT_VALUE = 20.0
KAFKA_DEFAULT_LAG = 10
#: Trigger parameters a Secret may fill, per trigger type (what our probes can use).
SECRET_PARAMETERS = {"rabbitmq": ("host",), "kafka": ("bootstrapServers",)}


class AuthRef(Model):
    name: Name
    kind: Literal["TriggerAuthentication"] = "TriggerAuthentication"


class ScaleTrigger(Model):
    type: str
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)
    authentication_ref: AuthRef | None = None
    name: str | None = None
    use_cached_metrics: bool | None = None
    metric_type: Literal["AverageValue"] | None = None


class ScaledObjectSpec(Model):
    scale_target_ref: ScaleTargetRef
    polling_interval: float | None = Field(default=None, gt=0, le=3600)
    cooldown_period: float | None = Field(default=None, ge=0, le=86400)
    initial_cooldown_period: float | None = Field(default=None, ge=0)
    min_replica_count: int | None = Field(default=None, ge=0)
    max_replica_count: int | None = Field(default=None, ge=1)
    advanced: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None
    idle_replica_count: int | None = None
    scaling_modifiers: dict[str, Any] | None = None
    triggers: list[ScaleTrigger] = Field(min_length=1, max_length=16)


class ScaledObject(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (KEDA_API,)
    KIND: ClassVar[str] = "ScaledObject"

    api_version: Literal["keda.sh/v1alpha1"]
    kind: Literal["ScaledObject"]
    spec: ScaledObjectSpec


class SecretTargetRef(Model):
    parameter: str
    name: Name
    key: str


class TriggerAuthenticationSpec(Model):
    secret_target_ref: list[SecretTargetRef] = Field(default_factory=list, max_length=32)


class TriggerAuthentication(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (KEDA_API,)
    KIND: ClassVar[str] = "TriggerAuthentication"

    api_version: Literal["keda.sh/v1alpha1"]
    kind: Literal["TriggerAuthentication"]
    spec: TriggerAuthenticationSpec


class Secret(Resource):
    """A Kubernetes ``Secret`` (``v1``): values for ``TriggerAuthentication`` refs."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    KIND: ClassVar[str] = "Secret"

    api_version: Literal["v1"]
    kind: Literal["Secret"]
    type: str | None = None
    data: dict[str, str] = Field(default_factory=dict, max_length=256)
    string_data: dict[str, str] = Field(default_factory=dict, max_length=256)
    immutable: bool | None = None

    def value(self, key: str) -> str | None:
        if key in self.string_data:
            return self.string_data[key]
        raw = self.data.get(key)
        if raw is None:
            return None
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise KedaError(f"data.{key}", None, "is not valid base64 of UTF-8 text") from None


class KedaError(ValueError):
    """Why a ScaledObject cannot be imported; ``field`` is a path in the document."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


#: ``lookup(kind, "namespace/name")``: a loaded resource, or None.
Lookup = Any


def derive_workload(resource: Resource, lookup: Lookup) -> Resource:
    """The loader's derivation hook (see ``KindRegistry.derivations``)."""
    assert isinstance(resource, ScaledObject)
    return to_workload(resource, lookup)


def to_workload(scaled: ScaledObject, lookup: Lookup) -> Workload:
    """The Workload a ScaledObject means; raise :class:`KedaError` if it cannot be."""
    spec = scaled.spec
    advanced = dict(spec.advanced or {})
    window = _stabilization(advanced)
    for field, value in (
        ("fallback", spec.fallback),
        ("idleReplicaCount", spec.idle_replica_count),
        ("scalingModifiers", spec.scaling_modifiers),
    ):
        if value is not None:
            raise KedaError(f"spec.{field}", None, "is not supported by eventing")
    metrics: list[dict[str, Any]] = []
    targets: set[float] = set()
    activations: set[float] = set()
    for index, trigger in enumerate(spec.triggers):
        where = f"spec.triggers[{index}]"
        params = dict(trigger.metadata)
        if trigger.authentication_ref is not None:
            params.update(_secrets(scaled, trigger, lookup, where))
        metric, target, activation = _trigger(trigger.type, params, where)
        metrics.append(metric)
        targets.add(target)
        activations.add(activation)
    if len(targets) > 1 or len(activations) > 1:
        raise KedaError(
            "spec.triggers",
            None,
            "triggers with different targets or activation values are not supported: "
            "eventing sizes a workload on one target per replica",
        )
    scaling: dict[str, Any] = {
        "minReplicas": spec.min_replica_count if spec.min_replica_count is not None else 0,
        "maxReplicas": spec.max_replica_count if spec.max_replica_count is not None else 100,
        "keepAlive": "fixed",
        "cooldownPeriod": spec.cooldown_period
        if spec.cooldown_period is not None
        else KEDA_COOLDOWN,
        "stabilizationWindowSeconds": window,
        "pollingInterval": spec.polling_interval or KEDA_POLLING,
        "targetPerReplica": targets.pop(),
        "activationThreshold": activations.pop(),
        "externalMetrics": metrics,
    }
    doc = {
        "apiVersion": "eventing.local/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": scaled.name, "namespace": scaled.namespace},
        "spec": {
            "scaleTargetRef": spec.scale_target_ref.model_dump(by_alias=True, exclude_none=True),
            "scaling": scaling,
        },
    }
    try:
        return Workload.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise KedaError("spec", None, f"{path}: {first['msg']}") from None


def _stabilization(advanced: dict[str, Any]) -> float:
    unknown = set(advanced) - {"horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount"}
    if unknown:
        raise KedaError(f"spec.advanced.{sorted(unknown)[0]}", None, "is not supported")
    hpa = advanced.get("horizontalPodAutoscalerConfig") or {}
    behavior = hpa.get("behavior") or {} if isinstance(hpa, dict) else {}
    down = behavior.get("scaleDown") or {} if isinstance(behavior, dict) else {}
    value = down.get("stabilizationWindowSeconds") if isinstance(down, dict) else None
    if value is None:
        return KEDA_STABILIZATION
    if not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise KedaError(
            "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown."
            "stabilizationWindowSeconds",
            value,
            "must be a number of seconds from 0 to 3600",
        )
    return float(value)


def _secrets(
    scaled: ScaledObject, trigger: ScaleTrigger, lookup: Lookup, where: str
) -> dict[str, str]:
    assert trigger.authentication_ref is not None
    name = trigger.authentication_ref.name
    auth = lookup("TriggerAuthentication", f"{scaled.namespace}/{name}")
    if auth is None:
        raise KedaError(
            f"{where}.authenticationRef.name", name, f"no TriggerAuthentication named {name!r}"
        )
    allowed = SECRET_PARAMETERS.get(trigger.type, ())
    values: dict[str, str] = {}
    for ref in auth.spec.secret_target_ref:
        if ref.parameter not in allowed:
            raise KedaError(
                f"{where}.authenticationRef",
                ref.parameter,
                f"TriggerAuthentication {name!r} sets parameter {ref.parameter!r}, which "
                f"eventing's {trigger.type} probe does not support (supported: "
                f"{', '.join(allowed) or 'none'})",
            )
        secret = lookup("Secret", f"{scaled.namespace}/{ref.name}")
        if secret is None:
            raise KedaError(f"{where}.authenticationRef", ref.name, f"no Secret named {ref.name!r}")
        value = secret.value(ref.key)
        if value is None:
            raise KedaError(
                f"{where}.authenticationRef",
                ref.name,
                f"Secret {ref.name!r} has no key {ref.key!r}",
            )
        values[ref.parameter] = value
    return values


def _number(params: dict[str, str], key: str, default: float, where: str) -> float:
    raw = params.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise KedaError(f"{where}.metadata.{key}", raw, "must be a number") from None
    if value < 0:
        raise KedaError(f"{where}.metadata.{key}", raw, "must not be negative")
    return value


def _trigger(kind: str, params: dict[str, str], where: str) -> tuple[dict[str, Any], float, float]:
    if kind not in TRIGGER_TYPES:
        raise KedaError(
            f"{where}.type",
            kind,
            f"KEDA trigger type {kind!r} is not supported; eventing imports "
            f"{' and '.join(TRIGGER_TYPES)} triggers",
        )
    if "hostFromEnv" in params:
        raise KedaError(
            f"{where}.metadata.hostFromEnv",
            None,
            "is not supported: give host, or a TriggerAuthentication with a Secret",
        )
    if kind == "rabbitmq":
        return _rabbitmq(params, where)
    return _kafka(params, where)


def _rabbitmq(params: dict[str, str], where: str) -> tuple[dict[str, Any], float, float]:
    known = {"host", "queueName", "mode", "value", "queueLength", "activationValue",
             "protocol", "vhostName"}  # fmt: skip
    _only(params, known, where)
    if params.get("mode", "QueueLength") != "QueueLength":
        raise KedaError(
            f"{where}.metadata.mode", params["mode"], "only mode QueueLength is supported"
        )
    if params.get("vhostName", "/") != "/":
        raise KedaError(
            f"{where}.metadata.vhostName", params["vhostName"], "put the vhost in the host URL"
        )
    host, queue = params.get("host"), params.get("queueName")
    if not host or not queue:
        raise KedaError(f"{where}.metadata", None, "rabbitmq needs host and queueName")
    protocol = params.get("protocol", "auto")
    http = protocol == "http" or (protocol == "auto" and host.startswith(("http://", "https://")))
    metric: dict[str, Any] = {"type": "rabbitmq", "queue": queue}
    metric["managementUrl" if http else "url"] = host
    value = _number(
        params, "value", _number(params, "queueLength", RABBITMQ_DEFAULT_VALUE, where), where
    )
    return metric, value, _number(params, "activationValue", 0.0, where)


def _kafka(params: dict[str, str], where: str) -> tuple[dict[str, Any], float, float]:
    known = {"bootstrapServers", "consumerGroup", "topic", "lagThreshold",
             "activationLagThreshold", "offsetResetPolicy"}  # fmt: skip
    _only(params, known, where)
    servers = [s.strip() for s in params.get("bootstrapServers", "").split(",") if s.strip()]
    group, topic = params.get("consumerGroup"), params.get("topic")
    if not servers or not group or not topic:
        raise KedaError(
            f"{where}.metadata", None, "kafka needs bootstrapServers, consumerGroup and topic"
        )
    lag = _number(params, "lagThreshold", KAFKA_DEFAULT_LAG, where)
    policy = params.get("offsetResetPolicy", "latest")
    if policy not in ("earliest", "latest"):
        raise KedaError(f"{where}.metadata.offsetResetPolicy", policy, "earliest or latest")
    metric = {
        "type": "kafka",
        "bootstrapServers": servers,
        "consumerGroup": group,
        "topic": topic,
        "lagThreshold": max(1, int(lag)),
        "offsetResetPolicy": policy,
    }
    return metric, lag, _number(params, "activationLagThreshold", 0.0, where)


def _only(params: dict[str, str], known: set[str], where: str) -> None:
    for key in sorted(params):
        if key not in known:
            raise KedaError(
                f"{where}.metadata.{key}",
                None,
                f"is not supported by eventing (supported: {', '.join(sorted(known))})",
            )
