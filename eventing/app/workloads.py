"""Wire Workload resources into the running system: an actuator and a router per
workload (local processes, or a Kubernetes scale target), a recorder and a scaler, a
delivery sink for the triggers that target it, the guardian, the external queue
probes, and the workload metrics."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from eventing.autoscaler.decide import Decision
from eventing.autoscaler.measure import ObservationRecorder
from eventing.autoscaler.observe import MetricSource
from eventing.delivery.sink import Sink
from eventing.events import Event
from eventing.kube.actuator import KubeActuator, ScaleTarget
from eventing.kube.api import KubeApi, KubeError
from eventing.kube.jobs import KubeJobRunner
from eventing.kube.router import ServiceRouter
from eventing.metrics import Metrics
from eventing.resources.workload import ExternalMetric, Workload
from eventing.workloads.actuator import STATES, Actuator, Router
from eventing.workloads.decisionlog import DEFAULT_MAX_BYTES, FILE_NAME, DecisionLog
from eventing.workloads.guardian import Guardian
from eventing.workloads.jobs import JobRunner
from eventing.workloads.local import LocalActuator
from eventing.workloads.pool import ReplicaPool
from eventing.workloads.replica import ReplicaConfig
from eventing.workloads.scaler import External, WorkloadScaler
from sinks.httpclient import Pool
from sinks.job import JobSink, LocalJobRunner
from sinks.workload import WorkloadSink

logger = logging.getLogger(__name__)

STOP_DEADLINE = 15.0
"""Seconds a removed Kubernetes workload waits for its scale-to-zero call."""
_ACTIVATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Feed(Protocol):
    """What a workload's autoscaler reads of a trigger that delivers to it: a
    :class:`~eventing.broker.base.Subscription`, or a split's
    :class:`~eventing.delivery.split.RouteShare` (its share of the trigger)."""

    listeners: list[Callable[[], None]]
    """Called once per arrival (for this workload)."""

    def local_backlog(self) -> int: ...


@dataclass
class WorkloadRuntime:
    resource: Workload
    actuator: Actuator
    router: Router
    scaler: WorkloadScaler
    sink: WorkloadSink
    subscriptions: list[Feed] = field(default_factory=list)
    probes: list[MetricSource] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.resource.key

    @property
    def pool(self) -> ReplicaPool:
        """The replica pool of a local workload (tests look inside it)."""
        if not isinstance(self.actuator, LocalActuator):
            raise TypeError(f"workload {self.key} does not run local processes")
        return self.actuator.pool


class Workloads:
    """All workloads of a system, and the one guardian they share."""

    def __init__(
        self,
        metrics: Metrics,
        data_dir: Path,
        client: Pool,
        kubeconfig: str | None = None,
        *,
        decisions_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.metrics = metrics
        self.data_dir = data_dir
        self.client = client
        self.guardian = Guardian()
        self.decision_log = DecisionLog(data_dir / FILE_NAME, max_bytes=decisions_max_bytes)
        """``decisions.jsonl``: its writer task is started by the composition root."""
        self.items: dict[str, WorkloadRuntime] = {}
        self.jobs: dict[str, JobRunner] = {}
        """Workloads that run one job per event (``spec.jobs``), by key."""
        self.listeners: list[Callable[[str, Decision, int], None]] = []
        """Told of every decision that changed a workload's replica count."""
        self._kube: KubeApi | None = None
        self._kube_lock = threading.Lock()
        r = metrics.registry
        from prometheus_client import Counter, Histogram

        self.decisions = Counter(
            "eventing_scale_decisions",
            "Replica count changes, by the kind of the decision's reason",
            ["workload", "reason"],
            registry=r,
        )
        self.cold_starts = Counter(
            "eventing_cold_starts",
            "Replicas started while the workload had none ready",
            ["workload"],
            registry=r,
        )
        self.activation = Histogram(
            "eventing_activation_latency_seconds",
            "First event for a workload at zero -> replica ready",
            ["workload"],
            buckets=_ACTIVATION_BUCKETS,
            registry=r,
        )
        metrics.add_live(
            "eventing_workload_replicas", "Replicas by state", ["workload", "state"], self._replicas
        )
        metrics.add_live(
            "eventing_decision_log_dropped",
            "Scale decisions not written to decisions.jsonl (the writer fell behind or failed)",
            [],
            lambda: [([], float(self.decision_log.dropped))],
            counter=True,
        )
        metrics.add_live(
            "eventing_workload_redeliveries",
            "Events redelivered because scale-in stopped their replica busy, by reason",
            ["workload", "reason"],
            lambda: [
                ([w.key, reason], float(n))
                for w in self.items.values()
                if isinstance(w.actuator, LocalActuator)
                for reason, n in w.actuator.pool.redelivered.items()
            ],
            counter=True,
        )
        metrics.add_live(
            "eventing_workload_desired_replicas",
            "Replicas the scaler wants",
            ["workload"],
            lambda: [([w.key], float(w.actuator.desired)) for w in self.items.values()],
        )

    def _replicas(self) -> list[tuple[list[str], float]]:
        return [
            ([w.key, state], float(w.actuator.count(state)))
            for w in self.items.values()
            for state in STATES
        ]

    def add(self, resource: Workload, external: list[External]) -> WorkloadRuntime | None:
        if resource.spec.jobs is not None:
            self._add_jobs(resource)
            return None
        spec = resource.scaling_spec
        if resource.spec.scale_target_ref is not None:
            actuator, router, path = self._kubernetes(resource)
        else:
            actuator, router, path = self._local(resource)
        recorder = ObservationRecorder(concurrency=spec.concurrency_per_replica)
        subscriptions: list[Feed] = []
        scaler = WorkloadScaler(
            resource.key,
            spec,
            actuator,
            recorder,
            backlog=lambda: sum(s.local_backlog() for s in subscriptions),
            in_flight=lambda: router.in_flight,
            external=external,
            decision_log=self.decision_log,
            on_decision=lambda d, prev: self._decided(resource.key, d, prev),
        )
        sink = WorkloadSink(
            resource.key,
            router,
            scaler,
            self.client,
            path,
            timeout=resource.spec.timeout_seconds,
        )
        runtime = WorkloadRuntime(
            resource, actuator, router, scaler, sink, subscriptions, [e.source for e in external]
        )
        actuator.on_ready(lambda startup: self._ready(runtime, startup))
        self.items[resource.key] = runtime
        return runtime

    def _kubernetes(self, resource: Workload) -> tuple[Actuator, Router, str]:
        ref = resource.spec.scale_target_ref
        assert ref is not None
        target = ScaleTarget(ref.api_version, ref.kind, ref.name, resource.namespace)
        actuator = KubeActuator(self._kube_api, target)
        # Without an address the workload only scales (on external metrics, as KEDA
        # does); the loader refuses a trigger that delivers to it.
        url = resource.spec.delivery_url(resource.namespace) or "http://0.0.0.0:9/"
        router = ServiceRouter(
            url,
            concurrency=resource.scaling_spec.concurrency_per_replica,
            ready=lambda: actuator.count("ready"),
        )
        actuator.on_change(router.changed)
        return actuator, router, ""

    def _kube_api(self) -> KubeApi:
        """One API connection shared by every Kubernetes workload (blocking: called
        from a worker thread by the actuator)."""
        with self._kube_lock:
            if self._kube is None:
                self._kube = KubeApi.connect(self.kubeconfig)
            return self._kube

    def _local(self, resource: Workload) -> tuple[Actuator, Router, str]:
        assert resource.spec.command is not None
        env = {e.name: e.value for e in resource.spec.env}
        readiness = resource.spec.readiness
        config = ReplicaConfig(
            workload=resource.name,
            command=resource.spec.command,
            env=env,
            working_dir=resource.spec.working_dir,
            probe_path=readiness.http_get.path if readiness.http_get is not None else None,
            probe_period=readiness.period_seconds,
            probe_timeout=readiness.timeout_seconds,
            startup_timeout=resource.spec.startup_timeout_seconds,
            grace_period=resource.spec.termination_grace_period_seconds,
            max_drain=resource.scaling_spec.max_drain,
        )
        local = LocalActuator(
            config,
            concurrency=resource.scaling_spec.concurrency_per_replica,
            guardian=self.guardian,
        )
        return local, local, resource.spec.path

    def _add_jobs(self, resource: Workload) -> None:
        jobs = resource.spec.jobs
        assert jobs is not None
        template = resource.spec.job_template
        if template is not None:
            self.jobs[resource.key] = KubeJobRunner(
                resource.key,
                template.metadata.model_dump(),
                template.spec,
                self._kube_api,
                parallelism=jobs.parallelism,
                keep=jobs.keep,
                timeout=resource.spec.timeout_seconds,
            )
            return
        assert resource.spec.command is not None
        self.jobs[resource.key] = LocalJobRunner(
            resource.key,
            resource.spec.command,
            data_dir=self.data_dir,
            env={e.name: e.value for e in resource.spec.env},
            working_dir=resource.spec.working_dir,
            parallelism=jobs.parallelism,
            keep=jobs.keep,
            timeout=resource.spec.timeout_seconds,
            grace=resource.spec.termination_grace_period_seconds,
            # A job outlives nothing: the guardian stops it if eventing dies (kill -9).
            on_start=self.guardian.watch,
            on_end=self.guardian.unwatch,
        )

    def attach(
        self,
        workload_key: str,
        subscription: Feed,
        publish: Callable[[Event], Awaitable[None]] | None = None,
    ) -> Sink:
        """The sink a trigger delivers to; ``subscription`` is what the workload's
        autoscaler reads of the trigger (its subscription, or its share of a split);
        ``publish`` puts a job workload's failure events into the trigger's broker (its
        success events are replies)."""
        if workload_key in self.jobs:
            return JobSink(self.jobs[workload_key], publish)
        runtime = self.items[workload_key]
        runtime.subscriptions.append(subscription)
        subscription.listeners.append(runtime.scaler.arrived)
        return runtime.sink

    def detach(self, workload_key: str, subscription: Feed) -> None:
        """Undo :meth:`attach` (a trigger deleted or given another subscriber)."""
        runtime = self.items.get(workload_key)
        if runtime is None:
            return
        if subscription in runtime.subscriptions:
            runtime.subscriptions.remove(subscription)
        if runtime.scaler.arrived in subscription.listeners:
            subscription.listeners.remove(runtime.scaler.arrived)

    async def start_one(self, runtime: WorkloadRuntime | None) -> None:
        """Start a workload added while running (:meth:`start` did the others)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        local = runtime is None or isinstance(runtime.actuator, LocalActuator)
        if local and self.guardian.proc is None:
            await self.guardian.start()
        if runtime is not None:
            await runtime.actuator.start()

    async def stop_one(self, runtime: WorkloadRuntime, *, to_zero: bool = True) -> None:
        """Stop a workload removed or replaced while running: its replicas drain what
        they hold and stop (SIGTERM, then SIGKILL after the grace period), or its
        Kubernetes target is scaled to zero (``to_zero``; not when a changed Workload
        took it over). Its scaler task was cancelled first."""
        actuator = runtime.actuator
        await actuator.close()
        if isinstance(actuator, KubeActuator) and to_zero:  # a last pass, bounded
            await actuator.scale_to(0)
            try:
                async with asyncio.timeout(STOP_DEADLINE):
                    await actuator.reconcile()
            except (KubeError, TimeoutError, ValueError, TypeError, KeyError) as exc:
                logger.warning("workload %s: not scaled to zero: %s", runtime.key, exc)
        for probe in runtime.probes:
            close = getattr(probe, "close", None)
            if close is not None:
                await close()

    def _decided(self, key: str, decision: Decision, previous: int) -> None:
        self.decisions.labels(key, reason_kind(decision.reason)).inc()
        for listener in self.listeners:
            listener(key, decision, previous)

    def _ready(self, runtime: WorkloadRuntime, startup: float) -> None:
        scaler = runtime.scaler
        scaler.recorder.replica_ready(startup)
        if scaler.activated_at is not None:
            self.activation.labels(runtime.key).observe(time.monotonic() - scaler.activated_at)
            self.cold_starts.labels(runtime.key).inc()
            scaler.activated_at = None

    async def start(self) -> None:
        if self.items or self.jobs:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        local_jobs = any(isinstance(r, LocalJobRunner) for r in self.jobs.values())
        if local_jobs or any(isinstance(w.actuator, LocalActuator) for w in self.items.values()):
            await self.guardian.start()
        for runtime in self.items.values():
            await runtime.actuator.start()

    async def close(self) -> None:
        for runtime in self.items.values():
            await runtime.actuator.close()
            for probe in runtime.probes:
                close = getattr(probe, "close", None)
                if close is not None:
                    await close()
        await self.guardian.close()
        await self.decision_log.close()  # the scalers have stopped: write what is left
        if self._kube is not None:
            await asyncio.to_thread(self._kube.close)
            self._kube = None


def reason_kind(reason: str) -> str:
    """The kind of a decision's reason, for a metric label: its leading words, up to
    the first number or colon ("scale up 1 -> 6: ..." -> "scale_up")."""
    words = []
    for word in reason.split():
        if word[0].isdigit() or word.endswith(":"):
            if word.endswith(":") and not word[0].isdigit():
                words.append(word[:-1])
            break
        words.append(word)
    return "_".join(words) or "other"


def external_metrics(resource: Workload) -> list[External]:
    """Build the external queue probes a workload scales on (KEDA-style)."""
    interval = resource.spec.scaling.polling_interval or 2.0
    built: list[External] = []
    # The probe applies the activation threshold, as KEDA's scalers do, so its
    # ``active`` (which decides 0 <-> 1 for an external queue) honours it.
    activation = resource.scaling_spec.activation_threshold
    for metric in resource.spec.scaling.external_metrics:
        built.append(
            External(
                _probe(metric, activation),
                interval,
                includes_in_flight=_includes_in_flight(metric),
            )
        )
    return built


def _includes_in_flight(metric: ExternalMetric) -> bool:
    # Management API depth counts unacknowledged messages (ours in flight); AMQP passive
    # declare and Kafka lag on committed offsets do not.
    return metric.type == "rabbitmq" and metric.management_url is not None


def _probe(metric: ExternalMetric, activation: float = 0.0) -> MetricSource:
    """The probe for one external metric; ``activation`` is the workload's
    ``activationThreshold`` (active iff the value is above it, strictly)."""
    if metric.type == "rabbitmq":
        from sources.rabbitmq.depth import RabbitmqQueueDepth

        assert metric.queue is not None
        return RabbitmqQueueDepth(
            metric.queue,
            management_url=metric.management_url,
            amqp_url=metric.url,
            activation_value=activation,
        )
    from sources.kafka.lag import KafkaConsumerLag, LagPolicy

    assert metric.bootstrap_servers
    assert metric.consumer_group
    assert metric.topic
    return KafkaConsumerLag(
        metric.bootstrap_servers,
        metric.consumer_group,
        [metric.topic],
        LagPolicy(
            lag_threshold=metric.lag_threshold,
            # Lag is a whole number: lag > floor(t) is the same test as lag > t.
            activation_lag_threshold=math.floor(activation),
            initial_offset=metric.offset_reset_policy,
        ),
    )
