"""The composition root: load, build, serve, and shut down in phases.

Start: load and validate the manifests, open the stores, start one named dispatcher
task per trigger and one per source, then the ingress and admin servers (so nothing
is accepted before its trigger can take it), and print where it listens.

Stop (SIGTERM/SIGINT, or ``stop()``), each phase bounded:

1. stop intake: the ingress answers 503 (and keeps listening until the drain is
   over); sources stop; dispatchers take no new event;
2. drain: dispatchers take no new event, attempts on the wire finish until the
   drain deadline, retries waiting for their backoff stay pending for the next run;
3. stop the scalers, then every workload's replicas (each drains what it holds, then
   SIGTERM, then SIGKILL after its grace period); the guardian exits last; the
   decisions not yet in ``decisions.jsonl`` are written (bounded);
4. close sinks and stores (every ack committed), cancel stragglers, exit.

A watchdog thread ends the process if all of that exceeds the hard deadline.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from eventing import stages
from eventing.admin import AdminHooks, admin_app
from eventing.admin_auth import AdminAccess, load_or_create_token
from eventing.app.broker_classes import broker_classes
from eventing.app.ingress_auth_config import ingress_auth
from eventing.app.ingress_worker import MODULE as WORKER_MODULE
from eventing.app.ingress_worker import direct_specs
from eventing.app.kube_status import status_writer
from eventing.app.lock import DataDirLock
from eventing.app.observatory import Observatory, TappedBroker
from eventing.app.process import process_id
from eventing.app.reconcile import Reconciler
from eventing.app.registry import build_sources, kind_registry
from eventing.app.status import system_status
from eventing.app.system import StoreSettings, System, build_system
from eventing.broker.registry import BrokerClasses
from eventing.connections import private_dir, raise_open_file_limit
from eventing.errors import ConfigError
from eventing.ingress.auth import IngressAuth
from eventing.ingress.pool import IngressWorkers
from eventing.ingress.server import Ingress, IngressSettings
from eventing.kube.api import KubeApi, KubeError
from eventing.kube.feed import ClusterResources, load_from_cluster
from eventing.kube.watch import ClusterFeed, cluster_origins, rejections
from eventing.metrics import Metrics
from eventing.resources.loader import KindRegistry, ResourceSet, load_resources
from eventing.resources.refs import Platform
from eventing.resources.watch import DirectoryFeed, Stamp, origins, stamp
from eventing.sourcing import Source, WebhookSource
from eventing.supervise import Supervisor
from eventing.tls import ServerTls, server_context, watch

logger = logging.getLogger(__name__)


async def _load(directory: Path | None, registry: KindRegistry, platform: Platform) -> ResourceSet:
    """The resources from a directory or the cluster; logs what loads but is ignored
    (a Knative field with no meaning here)."""
    if directory is None:
        resources = await asyncio.to_thread(_from_cluster, registry, platform)
    else:
        resources = load_resources(directory, registry, platform=platform)
    for warning in resources.warnings:
        logger.warning("%s", warning)
    return resources


def _from_cluster(registry: KindRegistry, platform: Platform) -> ResourceSet:
    try:
        api = KubeApi.connect(platform.kubeconfig)
        try:
            return load_from_cluster(api, registry, platform, platform.namespace)
        finally:
            api.close()
    except KubeError as exc:
        raise ConfigError(f"cannot read resources from Kubernetes: {exc}") from None


RECONCILE = "reconcile"
BROKERS = "brokers"
DISPATCH = "dispatch"
SOURCES = "sources"
SCALERS = "scalers"
UI = "ui"


@dataclass
class RuntimeSettings:
    host: str = "127.0.0.1"
    """Interface the ingress binds to (use 0.0.0.0 to accept from other hosts)."""
    port: int = 8080
    """Ingress port (0 picks a free one)."""
    admin_host: str = "127.0.0.1"
    admin_port: int = 8090
    tls: ServerTls | None = None
    """Certificate and key for the ingress and the admin API (https; reloaded when
    the files change)."""
    admin_allowed_hosts: tuple[str, ...] = ()
    """More Host names the admin API answers to (beyond loopback and the bind address)."""
    admin_token: bool = False
    """Require the admin token (kept in ``<data dir>/admin.token``) for writes, the
    dead-letter store and the tail; ``eventing run`` turns it on."""
    drain_timeout: float = 10.0
    """Seconds in-flight deliveries may take to finish at shutdown."""
    hard_timeout: float = 30.0
    """Seconds after a stop request when the process exits whatever happens."""
    process_id: str | None = None
    """This process's stable id (logs, ``/metrics``, Kafka client and RabbitMQ
    connection names); by default derived from the host name and the data dir."""
    ingress_workers: int = 0
    """Processes that parse ingress HTTP requests (0: the main process does it)."""
    log_level: str = "WARNING"
    """Log level of the ingress workers."""
    store: StoreSettings = field(default_factory=StoreSettings)
    ingress: IngressSettings = field(default_factory=IngressSettings)
    otel_endpoint: str | None = None
    """OTLP/HTTP collector for the spans of traced events (``eventing.app.tracing``)."""
    watch: bool = False
    """Apply changes of the manifests (or of the API server's objects) live
    (:mod:`eventing.app.reconcile`); ``eventing run`` turns it on."""
    watch_interval: float = 1.0
    """Seconds between looks at the manifest directory."""


@dataclass
class Running:
    """A started system: its addresses and what it runs (for tests and ``status``)."""

    system: System
    ingress: Ingress
    ingress_url: str
    admin_url: str
    sources: list[Source | WebhookSource]
    supervisor: Supervisor
    runners: list[web.BaseRunner]
    """The in-process ingress server's runner (if any), then the admin API's."""
    workers: IngressWorkers | None
    lock: DataDirLock
    started: float = field(default_factory=time.time)
    process: str = ""
    """This process's stable id (logs, ``/metrics``, status)."""
    reconciler: Reconciler | None = None
    """Applies changed manifests live (with ``RuntimeSettings.watch``)."""


async def start(directory: Path | None, settings: RuntimeSettings) -> Running:
    ident = _prepare_process(settings)
    classes = broker_classes(settings.store.sqlite(), process_id=ident)
    registry = kind_registry(classes)
    # The directory as read at start: the watch applies what changes after this look.
    seen = await asyncio.to_thread(stamp, directory) if directory is not None else None
    resources = await _load(directory, registry, settings.store.platform)
    lock = DataDirLock(settings.store.data_dir)
    metrics = _process_metrics(ident)
    try:
        system = await build_system(resources, settings.store, metrics, classes)
    except BaseException:
        lock.release()
        raise
    supervisor = Supervisor()
    runners: list[web.BaseRunner] = []
    workers: IngressWorkers | None = None
    try:
        sources = build_sources(resources, system, settings.store.data_dir)
        await _spawn_loops(system, supervisor)
        webhooks = []
        for source, emit in sources:
            if isinstance(source, WebhookSource):
                webhooks.append((source, emit))
            else:
                supervisor.spawn(
                    f"source {source.name}",
                    _bind(source.run, emit),
                    group=SOURCES,
                    restart=True,
                    on_error=_health_error(source),
                )
        observatory = Observatory(system, resources)
        auth = _ingress_auth(settings.host, resources, list(system.brokers), webhooks)
        ingress = Ingress(observatory.publishers(), metrics, settings.ingress, webhooks, auth)
        if settings.ingress_workers > 0:
            workers = IngressWorkers(
                settings.ingress_workers,
                observatory.publishers(),
                webhooks,
                settings.ingress,
                metrics,
                settings.log_level,
                auth,
                direct=direct_specs(system.brokers),
                worker_module=WORKER_MODULE,
                on_tap=observatory.tap.offer_later,
            )
            ingress_url = await workers.start(settings.host, settings.port, settings.tls)
        else:
            ingress_runner, ingress_url = await _serve(
                ingress.server(), settings.host, settings.port, settings.tls
            )
            runners.append(ingress_runner)
        hooks = AdminHooks(
            metrics=metrics,
            status=lambda: {},
            ready=lambda: (
                ingress.accepting
                and all(b.status().ready for b in system.brokers.values())
                and (workers is None or workers.ready())
            ),
            dead_letters=system.dead_letter_queues,
            replay=system.replay,
            routes=[observatory.routes()],
        )
        admin_runner, admin_url = await _serve(
            admin_app(hooks, _admin_access(settings)),
            settings.admin_host,
            settings.admin_port,
            settings.tls,
        )
        runners.append(admin_runner)
    except BaseException:
        if workers is not None:
            await workers.stop()
        for group in (RECONCILE, SOURCES, DISPATCH, SCALERS, BROKERS):
            await supervisor.stop(group, timeout=2.0)
        for runner in runners:
            await runner.cleanup()
        await _stop_tls_watchers(runners)
        await system.close()
        lock.release()
        raise
    running = Running(
        system,
        ingress,
        ingress_url,
        admin_url,
        [s for s, _ in sources],
        supervisor,
        runners,
        workers,
        lock,
        process=ident,
    )
    _source_gauges(metrics, running.sources)
    observatory.start(running, supervisor, UI, settings.otel_endpoint)
    _feeds(running, directory, registry, classes, settings, seen, observatory)
    hooks.status = lambda: system_status(running)
    return running


def _process_metrics(ident: str) -> Metrics:
    metrics = Metrics()
    metrics.add_live(
        "eventing_process_info",
        "1, labelled with this data-plane process's stable id",
        ["process"],
        lambda: [([ident], 1.0)],
    )
    return metrics


def _feeds(
    running: Running,
    directory: Path | None,
    registry: KindRegistry,
    classes: BrokerClasses,
    settings: RuntimeSettings,
    seen: Stamp | None,
    observatory: Observatory,
) -> None:
    """With ``watch``, the reconciler and its feed (the directory's watch, or the API
    server's); in controller mode, the status writer (it follows the reconciler)."""
    resources = running.system.resources
    platform = settings.store.platform
    reconciler = None
    if settings.watch:
        cluster = resources if isinstance(resources, ClusterResources) else None
        reconciler = running.reconciler = Reconciler.for_running(
            running,
            classes,
            cluster_origins(cluster) if cluster is not None else origins(resources),
            drain=settings.drain_timeout,
            data_dir=settings.store.data_dir,
        )
        reconciler.publisher = lambda broker: TappedBroker(broker, observatory.tap)
        if cluster is not None:
            reconciler.rejected = rejections(cluster)
    if directory is None:  # controller mode: status goes back to the API server
        writer = status_writer(running, platform.kubeconfig)
        running.supervisor.spawn("kubernetes status", writer.run, group=UI, restart=True)
    if reconciler is None:
        return
    apply = reconciler.apply
    if directory is not None:
        feed = DirectoryFeed(directory, registry, platform, interval=settings.watch_interval)
        feed.seen = seen
        running.supervisor.spawn("reconcile directory", lambda: feed.run(apply),
                                 group=RECONCILE, restart=True)  # fmt: skip
    else:
        kubeconfig = platform.kubeconfig
        cluster_feed = ClusterFeed(
            lambda pool: KubeApi.connect(kubeconfig, pool=pool),
            registry,
            platform,
            platform.namespace,
        )
        running.supervisor.spawn("reconcile kubernetes", lambda: cluster_feed.run(apply),
                                 group=RECONCILE, restart=True)  # fmt: skip


async def _spawn_loops(system: System, supervisor: Supervisor) -> None:
    """The scalers, the broker classes' own loops, and a dispatcher per trigger."""
    if system.workloads is not None:
        await system.workloads.start()
        # Always: a workload may be added live. Its last lines are written by close().
        supervisor.spawn("decision log", system.workloads.decision_log.run, group=SCALERS,
                         restart=True)  # fmt: skip
        for key, workload in system.workloads.items.items():
            supervisor.spawn(f"scaler {key}", workload.scaler.run, group=SCALERS, restart=True)
    for broker in system.brokers.values():
        for name, loop in broker.tasks():
            supervisor.spawn(name, loop, group=BROKERS, restart=True)
    for key, trig in system.triggers.items():
        supervisor.spawn(f"dispatch {key}", trig.dispatcher.run, group=DISPATCH, restart=True)


def _source_gauges(metrics: Metrics, sources: list[Source | WebhookSource]) -> None:
    states = ("starting", "connected", "stalled", "reconnecting", "failed", "stopped")

    def drops() -> list[tuple[list[str], float]]:
        return [
            ([s.name, reason], float(n))
            for s in sources
            for reason, n in getattr(s, "drops", {}).items()
        ]

    fields = ("received", "emitted", "refused", "failed", "reconnects", "held", "stalls")

    def counters() -> list[tuple[list[str], float]]:
        return [
            ([s.name, s.health.kind, field], float(getattr(s.health, field)))
            for s in sources
            for field in fields
        ]

    def up() -> list[tuple[list[str], float]]:
        return [
            ([s.name, s.health.kind, state], float(s.health.state == state))
            for s in sources
            for state in states
        ]

    metrics.add_live(
        "eventing_source_drops",
        "Events a source dropped on purpose, by reason",
        ["source", "reason"],
        drops,
    )
    metrics.add_live(
        "eventing_source_messages", "Per-source counters", ["source", "kind", "counter"], counters
    )
    metrics.add_live(
        "eventing_source_state", "1 for the state a source is in", ["source", "kind", "state"], up
    )


def _bind(run: Callable[[Any], Awaitable[None]], emit: Any) -> Callable[[], Awaitable[None]]:
    async def runner() -> None:
        await run(emit)

    return runner


def _health_error(source: Source) -> Callable[[str], None]:
    def record(message: str) -> None:
        source.health.set_state("reconnecting", message)

    return record


def _prepare_process(settings: RuntimeSettings) -> str:
    """Raise the open-file limit, make the data dir private; this process's id."""
    raise_open_file_limit()
    private_dir(settings.store.data_dir)
    return settings.process_id or process_id(settings.store.data_dir)


def _ingress_auth(
    host: str, resources: ResourceSet, brokers: list[str], webhooks: list[Any]
) -> IngressAuth:
    auth = ingress_auth(resources, [s for s, _ in webhooks])
    _warn_if_open(host, auth, brokers, [s.path for s, _ in webhooks])
    return auth


def _warn_if_open(host: str, auth: IngressAuth, brokers: list[str], paths: list[str]) -> None:
    """A loud warning when the ingress listens beyond loopback with doors left open."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return
    open_doors = [k for k in [*brokers, *paths] if k not in auth.rules]
    if open_doors:
        banner = "!" * 78
        logger.warning(
            "\n%s\nWARNING: the ingress listens on %s (not loopback) and accepts events "
            "WITHOUT AUTHENTICATION for: %s\nAnyone who can reach it can publish. Set the "
            "eventing.local/auth-* annotations (docs/operating.md, Security).\n%s",
            banner,
            host or "every address",
            ", ".join(open_doors),
            banner,
        )


def _admin_access(settings: RuntimeSettings) -> AdminAccess:
    access = AdminAccess(
        bind_host=settings.admin_host,
        allowed_hosts=frozenset(h.lower() for h in settings.admin_allowed_hosts),
    )
    if settings.admin_token:
        access.token, access.token_file = load_or_create_token(settings.store.data_dir)
    return access


_TLS_WATCHERS: dict[web.BaseRunner, asyncio.Task[None]] = {}


async def _serve(
    app: web.Application | web.Server, host: str, port: int, tls: ServerTls | None = None
) -> tuple[web.BaseRunner, str]:
    runner: web.BaseRunner
    if isinstance(app, web.Server):
        runner = web.ServerRunner(app, handle_signals=False, shutdown_timeout=1.0)
    else:
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            lingering_time=1.0,  # after a 408/413, read the rest of the body for 1 s at most
            keepalive_timeout=15.0,  # idle and slow-header connections are closed
        )
    await runner.setup()
    context = server_context(tls) if tls is not None else None
    site = web.TCPSite(runner, host, port, backlog=1024, ssl_context=context)
    await site.start()
    if context is not None and tls is not None:
        _TLS_WATCHERS[runner] = asyncio.create_task(watch(context, tls), name=f"tls {tls.cert}")
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
    return runner, f"{'https' if context else 'http'}://{shown}:{bound}"


async def _stop_tls_watchers(runners: list[web.BaseRunner]) -> None:
    tasks = [t for r in runners if (t := _TLS_WATCHERS.pop(r, None)) is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def stop(running: Running, settings: RuntimeSettings) -> None:
    loop = asyncio.get_running_loop()
    watchdog = _watchdog(settings.hard_timeout)
    started = loop.time()
    logger.info("stopping: intake")
    # The ingress answers 503 from now on but keeps listening until the drain is
    # over (producers get the documented 503, not a refused connection), and the
    # dispatchers take no new event from now on, so the drain ends when the attempts
    # on the wire do, not at its deadline with the last wave cancelled.
    running.ingress.accepting = False
    if running.workers is not None:
        running.workers.accepting = False
    # In the same step as the intake closes (no await between): from here on no
    # dispatcher starts an attempt, whatever the awaits below let run.
    for trigger in running.system.triggers.values():
        trigger.dispatcher.stop_taking()
    await running.supervisor.stop(RECONCILE, timeout=2.0)  # no change starts any more
    await asyncio.gather(
        running.supervisor.stop(DISPATCH, timeout=1.0),
        running.supervisor.stop(SOURCES, timeout=5.0),
    )
    logger.info("stopping: draining deliveries (up to %.0fs)", settings.drain_timeout)
    deadline = started + settings.drain_timeout
    # Again for a trigger a reconcile added before it was stopped (idempotent).
    dispatchers = [t.dispatcher for t in running.system.triggers.values()]
    for dispatcher in dispatchers:
        dispatcher.stop_taking()
    # Deliveries still waiting for a connection give up now (nothing was sent; they
    # stay pending), rather than being cancelled one by one at the deadline: with a
    # thousand triggers behind a hung subscriber that took seconds past it.
    running.system.pool.stop_queueing()
    await asyncio.gather(*(d.stop(deadline) for d in dispatchers))
    if running.workers is not None:
        await running.workers.stop(timeout=settings.drain_timeout)
    else:
        await running.runners[0].cleanup()
    logger.info("stopping: workloads")
    await running.supervisor.stop(UI, timeout=1.0)
    await running.supervisor.stop(SCALERS, timeout=2.0)
    logger.info("stopping: broker loops (final offset commits)")
    await running.supervisor.stop(BROKERS, timeout=10.0)
    logger.info("stopping: closing brokers")
    await running.system.close()
    await running.runners[-1].cleanup()
    await _stop_tls_watchers(running.runners)
    running.lock.release()
    watchdog.cancel()
    logger.info("stopped in %.2fs", loop.time() - started)


def tune_gc() -> None:
    """Once started: move everything allocated so far (modules, models, the system) out
    of the collector's sight and collect the young generation less often. The hot path
    allocates short-lived objects by the hundred per event; with the default thresholds
    the cyclic collector ran every few events and rescanned every long-lived object on
    each older-generation pass (measured at about 5 % of the main process's CPU)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _watchdog(seconds: float) -> threading.Timer:
    def expire() -> None:
        logger.error("shutdown took longer than %.0fs: exiting now", seconds)
        os._exit(70)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


async def serve_forever(
    directory: Path | None, settings: RuntimeSettings, announce: Callable[[Running], None]
) -> None:
    """``eventing run``: start, print where it listens, run until SIGTERM/SIGINT."""
    running = await start(directory, settings)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    tune_gc()
    stages.start("main")
    announce(running)
    try:
        await stop_requested.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # The process is ending: no collection pass during the bounded stop (with a
        # large backlog in memory a full pass takes a good part of a second, several
        # times while thousands of waiting deliveries end), and none at exit over what
        # the run left (after a drain cut short, seconds past the drain deadline).
        gc.disable()
        await stop(running, settings)
        gc.freeze()
