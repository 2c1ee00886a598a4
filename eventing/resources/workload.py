"""``Workload`` (our kind, ``eventing.local/v1alpha1``): what runs and how it scales.

On one machine a workload is an argv command; each replica is a subprocess that gets
its own ``PORT`` and receives events as HTTP POSTs on ``path``. Alternatively it names a
Kubernetes resource with a scale subresource (``scaleTargetRef``, KEDA's shape) whose
pods receive events through a Service (``service``) or a ``url``. A trigger delivers to
it with ``subscriber: {ref: {kind: Workload, name: ...}}``. The ``scaling`` block uses
KEDA's names where KEDA has the knob (``minReplicaCount`` is accepted as well as
``minReplicas``, and so on), and maps onto :class:`eventing.autoscaler.spec.ScalingSpec`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator

from eventing.autoscaler.spec import ScalingSpec
from eventing.errors import ConfigError
from eventing.resources.base import OUR_API, Model, Name, Resource


class HttpGetProbe(Model):
    path: str = "/healthz"


class TcpSocketProbe(Model):
    pass


class Readiness(Model):
    """How to tell a replica is ready: an HTTP GET answering 2xx, or a TCP connect.
    Without one, a replica is ready once its ``PORT`` accepts TCP connections."""

    http_get: HttpGetProbe | None = None
    tcp_socket: TcpSocketProbe | None = None
    period_seconds: float = Field(default=0.005, gt=0, le=10)
    """The longest gap between two probes while the replica starts: the first goes out
    as the process starts, the next 1 ms later, the gap doubling up to this (short:
    activation latency)."""
    timeout_seconds: float = Field(default=1.0, gt=0, le=60)

    @model_validator(mode="after")
    def _one_kind(self) -> Readiness:
        if self.http_get is not None and self.tcp_socket is not None:
            raise ValueError("use either httpGet or tcpSocket, not both")
        return self


class EnvVar(Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str = ""


class ExternalMetric(Model):
    """Scale on an external queue as KEDA does (see docs/autoscaling.md)."""

    type: Literal["rabbitmq", "kafka"]
    # rabbitmq
    queue: str | None = None
    url: str | None = None
    """AMQP URL (passive declare: ready messages only) for ``rabbitmq``."""
    management_url: str | None = None
    """RabbitMQ management API URL: ready + unacknowledged messages."""
    # kafka
    bootstrap_servers: list[str] | None = None
    topic: str | None = None
    consumer_group: str | None = None
    lag_threshold: int = Field(default=10, ge=1)
    offset_reset_policy: Literal["earliest", "latest"] = "latest"

    @model_validator(mode="after")
    def _fields(self) -> ExternalMetric:
        if self.type == "rabbitmq" and (not self.queue or not (self.url or self.management_url)):
            raise ValueError("rabbitmq needs 'queue' and 'url' or 'managementUrl'")
        if self.type == "kafka" and (
            not self.bootstrap_servers or not self.topic or not self.consumer_group
        ):
            raise ValueError("kafka needs 'bootstrapServers', 'topic' and 'consumerGroup'")
        return self


class Scaling(Model):
    """Every knob of :class:`~eventing.autoscaler.spec.ScalingSpec`; see its docstrings
    and docs/autoscaling.md for defaults and meaning."""

    min_replicas: int | None = Field(
        default=None, ge=0, validation_alias=AliasChoices("minReplicas", "minReplicaCount")
    )
    max_replicas: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("maxReplicas", "maxReplicaCount")
    )
    concurrency_per_replica: int | None = Field(default=None, ge=1, le=10_000)
    target_utilization: float | None = Field(default=None, gt=0, le=1)
    target_per_replica: float | None = Field(
        default=None, gt=0, validation_alias=AliasChoices("targetPerReplica", "value")
    )
    activation_threshold: float | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("activationThreshold", "activationValue"),
    )
    stabilization_window_seconds: float | None = Field(default=None, ge=0, le=3600)
    drain_horizon_seconds: float | None = Field(default=None, gt=0, le=3600)
    scale_down_hysteresis: float | None = Field(default=None, ge=0, le=1)
    keep_alive: Literal["fixed", "adaptive"] | None = None
    cooldown_period: float | None = Field(default=None, ge=0, le=86400)
    max_keep_alive_seconds: float | None = Field(default=None, ge=0, le=86400)
    keep_alive_min_samples: int | None = Field(default=None, ge=1, le=1000)
    cold_start_cost_seconds: float | None = Field(default=None, ge=0, le=86400)
    prewarm: bool | None = None
    max_drain_seconds: float | None = Field(default=None, ge=0, le=7 * 86400)
    """How long a replica chosen to go may finish its in-flight events (default 3600)."""
    polling_interval: float | None = Field(default=None, ge=0)
    """Accepted for KEDA compatibility and ignored (the scaler is pushed, not polled)."""
    external_metrics: list[ExternalMetric] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_field(self) -> Scaling:
        try:
            self.to_spec()
        except ConfigError as exc:  # e.g. maxReplicas < minReplicas
            raise ValueError(str(exc).removeprefix("invalid scaling spec: ")) from None
        return self

    def to_spec(self) -> ScalingSpec:
        fields = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "concurrency_per_replica": self.concurrency_per_replica,
            "target_utilization": self.target_utilization,
            "target_per_replica": self.target_per_replica,
            "activation_threshold": self.activation_threshold,
            "scale_down_stabilization": self.stabilization_window_seconds,
            "drain_horizon": self.drain_horizon_seconds,
            "scale_down_hysteresis": self.scale_down_hysteresis,
            "keep_alive": self.keep_alive,
            "scale_to_zero_after": self.cooldown_period,
            "keep_alive_max": self.max_keep_alive_seconds,
            "keep_alive_min_samples": self.keep_alive_min_samples,
            "cold_start_cost": self.cold_start_cost_seconds,
            "prewarm": self.prewarm,
            "max_drain": self.max_drain_seconds,
            "polling_interval": self.polling_interval,
        }
        return ScalingSpec(**{k: v for k, v in fields.items() if v is not None})  # type: ignore[arg-type]


class ScaleTargetRef(Model):
    """A Kubernetes resource with a scale subresource (KEDA's ``scaleTargetRef``)."""

    api_version: str = Field(default="apps/v1", pattern=r"^([a-z0-9.-]+/)?v[0-9a-z]+$")
    kind: str = Field(default="Deployment", pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=63)
    name: Name
    env_source_container_name: str | None = None
    """Accepted for KEDA compatibility; unused."""


class ServiceAddress(Model):
    """A Kubernetes Service in the workload's namespace, reached by its cluster DNS name."""

    name: Name
    port: int | None = Field(default=None, ge=1, le=65535)


class Jobs(Model):
    """Run one job (a subprocess) per event instead of replicas that answer HTTP (KEDA's
    ScaledJob, Knative's JobSink); see docs/autoscaling.md "Jobs per event"."""

    parallelism: int = Field(default=1, ge=1, le=1000)
    """At most this many jobs of the workload at once."""
    keep: int = Field(default=100, ge=1, le=100_000)
    """Finished jobs kept on disk (event, output, status) for ``eventing jobs``."""


class JobTemplateMeta(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class JobTemplate(Model):
    """A ``batch/v1`` Job in the shape of Knative JobSink's ``spec.job``: with
    ``eventing run --kubernetes`` each event gets one Job made from it (see
    docs/kubernetes.md "Jobs per event"). ``spec`` is a batch/v1 JobSpec, passed to the
    API server as written apart from what :mod:`eventing.kube.jobspec` adds (names,
    labels, the event's Secret volume and ``K_EVENT_*`` env, defaults)."""

    api_version: Literal["batch/v1"] | None = None
    kind: Literal["Job"] | None = None
    metadata: JobTemplateMeta = Field(default_factory=JobTemplateMeta)
    spec: dict[str, Any]

    @model_validator(mode="after")
    def _pod(self) -> JobTemplate:
        template = self.spec.get("template")
        pod = template.get("spec") if isinstance(template, dict) else None
        containers = pod.get("containers") if isinstance(pod, dict) else None
        if not isinstance(containers, list) or not containers:
            raise ValueError("spec.template.spec.containers must list at least one container")
        for i, c in enumerate(containers):
            if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
                raise ValueError(f"spec.template.spec.containers[{i}] needs a name and an image")
        assert isinstance(pod, dict)
        if pod.get("restartPolicy", "Never") not in ("Never", "OnFailure"):
            raise ValueError("spec.template.spec.restartPolicy must be Never or OnFailure")
        return self


class WorkloadSpec(Model):
    command: list[str] | None = Field(default=None, min_length=1)
    """argv of one local replica; no shell is involved."""
    scale_target_ref: ScaleTargetRef | None = None
    """Run on Kubernetes instead: scale this resource through its scale subresource."""
    service: ServiceAddress | None = None
    """With ``scaleTargetRef``: deliver to this Service (``http://NAME.NS.svc...``)."""
    url: str | None = Field(default=None, pattern=r"^http://", max_length=2048)
    """With ``scaleTargetRef``: deliver to this URL instead (complete, ``path`` unused)."""
    env: list[EnvVar] = Field(default_factory=list)
    working_dir: str | None = None
    path: str = Field(default="/", pattern=r"^/")
    """Where events are POSTed on a replica."""
    readiness: Readiness = Field(default_factory=Readiness)
    scaling: Scaling = Field(default_factory=Scaling)
    startup_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """A replica not ready by then is killed and replaced."""
    jobs: Jobs | None = None
    """Present: one job per event, not replicas (``command`` is the job's argv, or
    ``jobTemplate`` the Kubernetes Job)."""
    job_template: JobTemplate | None = None
    """With ``jobs``: one Kubernetes Job per event made from this (needs
    ``eventing run --kubernetes``)."""
    timeout_seconds: float | None = Field(default=None, gt=0, le=86400)
    """How long one event's work may take on a replica; replaces the triggers' delivery
    timeout for this workload (Knative Serving's ``timeoutSeconds``). Unset: each
    trigger's ``delivery.timeout``."""
    termination_grace_period_seconds: float = Field(default=10.0, ge=0, le=3600)
    """After SIGTERM, seconds before SIGKILL (Kubernetes' name and meaning)."""

    @model_validator(mode="after")
    def _runtime(self) -> WorkloadSpec:
        given = [self.command, self.scale_target_ref, self.job_template]
        if sum(x is not None for x in given) != 1:
            raise ValueError(
                "give one of 'command' (local processes), 'scaleTargetRef' (a Kubernetes "
                "resource with a scale subresource) or 'jobTemplate' (a Kubernetes Job per "
                "event, with 'jobs')"
            )
        if self.job_template is not None:
            if self.jobs is None:
                raise ValueError("'jobTemplate' goes with 'jobs' (parallelism, keep)")
            if self.env or self.working_dir or self.service or self.url:
                raise ValueError(
                    "'env', 'workingDir', 'service' and 'url' do not go with 'jobTemplate': "
                    "set env in the Job's pod template"
                )
        if self.scale_target_ref is None and (self.service or self.url):
            raise ValueError("'service' and 'url' go with 'scaleTargetRef'")
        if self.service is not None and self.url is not None:
            raise ValueError("use either 'service' or 'url', not both")
        if self.jobs is not None and self.scale_target_ref is not None:
            raise ValueError("'jobs' runs local processes; it does not go with 'scaleTargetRef'")
        if self.scale_target_ref is not None and (self.env or self.working_dir):
            raise ValueError(
                "'env' and 'workingDir' apply to local processes; with 'scaleTargetRef' "
                "set them in the target's pod template"
            )
        return self

    def delivery_url(self, namespace: str, cluster_domain: str = "cluster.local") -> str | None:
        """Where a Kubernetes workload's events go, or None if it names no address."""
        if self.url is not None:
            return self.url
        if self.service is not None:
            port = f":{self.service.port}" if self.service.port else ""
            return f"http://{self.service.name}.{namespace}.svc.{cluster_domain}{port}{self.path}"
        return None


class Workload(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (OUR_API,)
    KIND: ClassVar[str] = "Workload"

    api_version: Literal["eventing.local/v1alpha1"]
    kind: Literal["Workload"]
    spec: WorkloadSpec

    @property
    def scaling_spec(self) -> ScalingSpec:
        return self.spec.scaling.to_spec()
