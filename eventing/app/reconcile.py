"""The reconciler: one place that turns a desired set of resources into the running
system and applies every later difference live (design §11).

Two feeds hand it snapshots (:class:`~eventing.resources.desired.Desired`): the
directory watch (:mod:`eventing.resources.watch`) and the API server watch
(:mod:`eventing.kube.watch`). For each snapshot it diffs resources by kind and
``namespace/name`` against what runs and applies, in an order that never leaves a
reference dangling: new Brokers, new and changed Workloads, then Triggers (deleted,
changed, added), sources, and last the Workloads and Brokers that went away.

What each change means (the rules are in docs/operating.md, "Live reload"):

- a new Trigger subscribes to its running broker and sees the events accepted from
  then on (Knative: a trigger sees what arrives after it is ready);
- a deleted Trigger stops taking events, its attempts on the wire finish within the
  drain deadline, then its backlog is released (``Broker.unsubscribe``);
- a changed filter keeps the backlog (``Broker.refilter``); a changed subscriber or
  delivery spec keeps it too and only swaps where the next attempt goes
  (``Dispatcher.retarget``); a Trigger moved to another Broker is deleted and added;
- a Workload changed in any way starts anew beside the old one, its Triggers are
  pointed at the new one, then the old one drains and stops; a deleted one stops;
- a source changed or deleted is stopped (its un-acked messages stay with its server)
  and built again; a webhook source moves on the ingress at once;
- a Broker is added and opened; one deleted while a Trigger that stays still uses it
  keeps running, with a note saying so; a change of an existing Broker's class or
  config is noted and applies at the next start (its delivery defaults apply live).

A unit that did not load (a file, or one object of the API server) is reported with
``validate``'s messages, and what it held before keeps running (its last good version).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eventing.app.dedup_config import configure_broker
from eventing.app.ingress_auth_config import ingress_auth
from eventing.app.live_sources import Ident, LiveSources
from eventing.app.live_triggers import (
    add_trigger,
    change_trigger,
    remove_trigger,
    workloads_of,
)
from eventing.app.registry import SOURCE_MODULES
from eventing.app.system import _config_of
from eventing.app.workloads import external_metrics
from eventing.broker.base import Broker, Publisher
from eventing.broker.registry import BrokerClasses
from eventing.errors import ConfigError, StoreError
from eventing.resources.base import Resource
from eventing.resources.broker import Broker as BrokerResource
from eventing.resources.configmap import ConfigMap
from eventing.resources.desired import Desired, Rejection, fingerprint
from eventing.resources.loaded import ResourceSet
from eventing.resources.trigger import Trigger
from eventing.resources.workload import Workload

if TYPE_CHECKING:
    from eventing.app.runtime import Running

logger = logging.getLogger(__name__)

#: Supervisor groups (the runtime's names).
BROKERS, SCALERS = "brokers", "scalers"
TASK_STOP = 10.0


@dataclass
class Reconciler:
    running: Running
    classes: BrokerClasses
    drain_timeout: float = 10.0
    current: dict[Ident, Resource] = field(default_factory=dict)
    origins: dict[Ident, str] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    errors: dict[Ident, str] = field(default_factory=dict)
    """Resources that loaded but could not be applied, and why."""
    notes: dict[Ident, str] = field(default_factory=dict)
    """Resources kept although removed (in use), or whose change waits for a restart."""
    wanted: dict[Ident, Resource] = field(default_factory=dict)
    """The last snapshot's resources (with what was kept)."""
    applied: int = 0
    last_applied: float | None = None
    """Unix time of the last snapshot applied."""
    last_error: str | None = None
    listeners: list[Any] = field(default_factory=list)
    """Called after every apply (the Kubernetes status writer refreshes its list)."""
    data_dir: Path = Path(".eventing")
    sources: LiveSources = field(init=False)
    publisher: Callable[[Broker], Publisher] = lambda broker: broker
    """How the ingress sees a broker added while running (tapped for the dashboard)."""
    _retire: list[Any] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def for_running(
        cls,
        running: Running,
        classes: BrokerClasses,
        origins: dict[Ident, str],
        *,
        drain: float,
        data_dir: Path,
    ) -> Reconciler:
        """The reconciler of a system that just started from ``running.system.resources``."""
        resources = running.system.resources
        rec = cls(running, classes, drain, data_dir=data_dir)
        rec.current = {(r.kind, r.key): r for r in resources.resources}
        rec.origins = dict(origins)
        built = [r for m in SOURCE_MODULES for r in resources.of(m.MODEL)]
        rec.sources = LiveSources(running, data_dir)
        rec.sources.running = dict(
            zip([(r.kind, r.key) for r in built], running.sources, strict=True)
        )
        return rec

    # -- entry point ------------------------------------------------------------------

    async def apply(self, desired: Desired) -> None:
        """Make the running system what ``desired`` says; one snapshot at a time."""
        async with self._lock:
            if desired.error is not None:
                if desired.error != self.last_error:
                    logger.error("manifests not applied (everything keeps running): %s",
                                 desired.error)  # fmt: skip
                self.last_error = desired.error
                return
            self.last_error = None
            self._report(desired.rejected)
            effective = self.wanted = self._effective(desired)
            await self._apply(effective)
            self.applied += 1
            self.last_applied = time.time()
            for listener in self.listeners:
                listener()

    def _report(self, rejected: list[Rejection]) -> None:
        before = {(r.unit, r.messages) for r in self.rejected}
        for r in rejected:
            if (r.unit, r.messages) not in before:
                for message in r.messages:
                    logger.error("not applied (the last good version keeps running): %s",
                                 message)  # fmt: skip
        self.rejected = list(rejected)

    def _effective(self, desired: Desired) -> dict[Ident, Resource]:
        """The desired resources, plus what a rejected unit held before (its last good
        version), plus Brokers and Workloads still used by a Trigger that stays."""
        wanted = {(r.kind, r.key): r for r in desired.resources.resources}
        units = desired.rejected_units()
        origins = dict(desired.origins)
        self.notes = {}
        for ident, resource in self.current.items():
            if ident not in wanted and self.origins.get(ident) in units:
                wanted[ident] = resource
                origins[ident] = self.origins[ident]
        triggers = [r for r in wanted.values() if isinstance(r, Trigger)]
        for ident, resource in self.current.items():
            if ident in wanted:
                continue
            users = sorted(t.key for t in triggers if _uses(t, resource))
            if users:
                wanted[ident] = resource
                origins[ident] = self.origins.get(ident, "")
                self.notes[ident] = (
                    f"{resource.kind} {resource.key} was removed but Trigger(s) "
                    f"{', '.join(users)} still use it: it keeps running until they are deleted"
                )
                logger.warning("%s", self.notes[ident])
        self.origins = origins
        return wanted

    # -- applying ---------------------------------------------------------------------

    async def _apply(self, wanted: dict[Ident, Resource]) -> None:
        system = self.running.system
        old = self.current
        self.errors = {k: v for k, v in self.errors.items() if k in wanted}
        resources = ResourceSet(resources=list(wanted.values()))
        resources.warnings = system.resources.warnings
        system.resources = resources
        applied: dict[Ident, Resource] = {}
        retarget: set[str] = set()
        for ident, model in wanted.items():
            if isinstance(model, BrokerResource):
                await self._broker(ident, old.get(ident), model, applied, retarget)
        for ident, model in wanted.items():
            if isinstance(model, Workload):
                await self._workload(ident, old.get(ident), model, applied, retarget)
        await self._triggers(old, wanted, applied, retarget)
        await self._all_sources(old, wanted, applied)
        for ident, model in old.items():
            if ident not in wanted and isinstance(model, Workload):
                await self._guard(ident, self._remove_workload(model.key))
        for ident, model in old.items():
            if ident not in wanted and isinstance(model, BrokerResource):
                await self._guard(ident, self._remove_broker(model.key))
        for ident, model in wanted.items():  # the kinds not run by themselves
            if ident not in applied and not _runs(model):
                applied[ident] = model
        self.current = applied
        # What runs is what the system resolves references against from now on.
        resources.resources = list(applied.values())

    async def _guard(self, ident: Ident, step: Any) -> bool:
        """Run one step; a failure is recorded for that resource, the rest goes on."""
        try:
            await step
        except (ConfigError, StoreError, KeyError, ValueError, OSError) as exc:
            message = str(exc).strip("'\"") or type(exc).__name__
            self.errors[ident] = message
            logger.error("%s %s not applied: %s", ident[0], ident[1], message)
            return False
        self.errors.pop(ident, None)
        return True

    # -- brokers ----------------------------------------------------------------------

    async def _broker(
        self,
        ident: Ident,
        before: Resource | None,
        model: BrokerResource,
        applied: dict[Ident, Resource],
        retarget: set[str],
    ) -> None:
        if before is None:
            if await self._guard(ident, self._add_broker(model)):
                applied[ident] = model
            return
        applied[ident] = model
        if fingerprint(before, without=("delivery",)) != fingerprint(model, without=("delivery",)):
            self.notes[ident] = (
                f"Broker {model.key}: a change of its class or config applies at the next "
                "start (the running broker keeps its settings)"
            )
        if fingerprint(before) != fingerprint(model):  # delivery defaults: live
            retarget.update(k for k, t in self.running.system.triggers.items()
                            if t.broker.key == model.key)  # fmt: skip

    async def _add_broker(self, model: BrokerResource) -> None:
        running, system = self.running, self.running.system
        if running.workers is not None:
            raise ConfigError(
                f"Broker {model.key}: a Broker added while running needs a restart "
                "with --ingress-workers (the workers know the brokers of the start)"
            )
        config_maps = {c.key: c for c in system.resources.of(ConfigMap)}
        broker = self.classes.build(model, _config_of(model, config_maps))
        configure_broker(broker, model)
        await broker.open()
        system.brokers[model.key] = broker
        system.opened.append(broker)
        for name, loop in broker.tasks():
            running.supervisor.spawn(name, loop, group=BROKERS, restart=True)
        publishers = cast(dict[str, Publisher], running.ingress.brokers)
        publishers[model.key] = self.publisher(broker)
        self._refresh_auth()

    async def _remove_broker(self, key: str) -> None:
        running, system = self.running, self.running.system
        broker = system.brokers.pop(key, None)
        if broker is None:
            return
        cast(dict[str, Publisher], running.ingress.brokers).pop(key, None)
        if running.workers is not None:
            running.workers.forget(key)
        for name, _ in broker.tasks():
            await running.supervisor.cancel(name, TASK_STOP)
        if broker in system.opened:
            system.opened.remove(broker)
        await broker.close()
        self._refresh_auth()
        logger.info("broker %s removed", key)

    def _refresh_auth(self) -> None:
        running = self.running
        webhooks = self.sources.webhooks()
        running.ingress.auth = ingress_auth(running.system.resources, webhooks)

    # -- workloads --------------------------------------------------------------------

    async def _workload(
        self,
        ident: Ident,
        before: Resource | None,
        model: Workload,
        applied: dict[Ident, Resource],
        retarget: set[str],
    ) -> None:
        if before is not None and fingerprint(before) == fingerprint(model):
            applied[ident] = model
            return
        if await self._guard(ident, self._start_workload(model, replace=before is not None)):
            applied[ident] = model
            if before is not None:
                retarget.update(self._users_of(model.key))
        elif before is not None:
            applied[ident] = before  # the old one keeps running

    async def _start_workload(self, model: Workload, *, replace: bool) -> None:
        running = self.running
        workloads = running.system.workloads
        assert workloads is not None
        key = model.key
        old = workloads.items.pop(key, None)
        old_jobs = workloads.jobs.pop(key, None)
        try:
            runtime = workloads.add(model, external_metrics(model))
            await workloads.start_one(runtime)
        except BaseException:
            if old is not None:
                workloads.items[key] = old
            if old_jobs is not None:
                workloads.jobs[key] = old_jobs
            raise
        await running.supervisor.cancel(f"scaler {key}", TASK_STOP)
        if runtime is not None:
            running.supervisor.spawn(f"scaler {key}", runtime.scaler.run, group=SCALERS,
                                     restart=True)  # fmt: skip
        if old is not None:  # drains after its triggers were pointed at the new one
            for sub in old.subscriptions:
                if old.scaler.arrived in sub.listeners:
                    sub.listeners.remove(old.scaler.arrived)
            old.subscriptions.clear()
            self._retire.append(old)
        if replace:
            logger.info("workload %s replaced (new replicas, the old ones drain)", key)

    async def _remove_workload(self, key: str) -> None:
        running = self.running
        workloads = running.system.workloads
        assert workloads is not None
        await running.supervisor.cancel(f"scaler {key}", TASK_STOP)
        workloads.jobs.pop(key, None)
        old = workloads.items.pop(key, None)
        if old is not None:
            await workloads.stop_one(old)
        logger.info("workload %s removed", key)

    def _users_of(self, workload_key: str) -> list[str]:
        return [
            k
            for k, t in self.running.system.triggers.items()
            if workload_key in workloads_of(t.resource)
        ]

    # -- triggers ---------------------------------------------------------------------

    async def _triggers(
        self,
        old: dict[Ident, Resource],
        wanted: dict[Ident, Resource],
        applied: dict[Ident, Resource],
        retarget: set[str],
    ) -> None:
        # Deleted triggers drain side by side: one drain deadline for all, not one each.
        await asyncio.gather(
            *(
                self._guard(ident, remove_trigger(self.running, model.key, self.drain_timeout))
                for ident, model in old.items()
                if isinstance(model, Trigger) and ident not in wanted
            )
        )
        for ident, model in wanted.items():
            if not isinstance(model, Trigger):
                continue
            before = old.get(ident)
            running = model.key in self.running.system.triggers
            if not isinstance(before, Trigger) or not running:
                if await self._guard(ident, add_trigger(self.running, model)):
                    applied[ident] = model
                continue
            if before.broker_key != model.broker_key:
                await self._guard(
                    ident, remove_trigger(self.running, model.key, self.drain_timeout)
                )
                if await self._guard(ident, add_trigger(self.running, model)):
                    applied[ident] = model
                continue
            step = change_trigger(self.running, before, model, model.key in retarget)
            applied[ident] = model if await self._guard(ident, step) else before
        retire, self._retire = self._retire, []
        workloads = self.running.system.workloads
        for runtime in retire:  # replaced workloads: their triggers moved on
            if workloads is not None:  # a Kubernetes target stays with the new one
                await workloads.stop_one(runtime, to_zero=False)

    # -- sources ----------------------------------------------------------------------

    async def _all_sources(
        self,
        old: dict[Ident, Resource],
        wanted: dict[Ident, Resource],
        applied: dict[Ident, Resource],
    ) -> None:
        kinds = {m.MODEL.KIND for m in SOURCE_MODULES}
        for ident, model in old.items():
            if model.kind in kinds and ident not in wanted:
                await self._guard(ident, self.sources.stop(ident))
        for ident, model in wanted.items():
            if model.kind not in kinds:
                continue
            before = old.get(ident)
            if before is not None and ident in self.sources.running:
                if fingerprint(before) == fingerprint(model):
                    applied[ident] = model
                    continue
                await self._guard(ident, self.sources.stop(ident))
            if await self._guard(ident, self.sources.start(ident, model)):
                applied[ident] = model
                self._refresh_auth()

    # -- status -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The ``reconcile`` part of ``eventing status``."""
        return {
            "applied": self.applied,
            "error": self.last_error,
            "rejected": [{"unit": r.unit, "messages": list(r.messages)} for r in self.rejected],
            "notApplied": [
                {"kind": k, "name": n, "message": m} for (k, n), m in sorted(self.errors.items())
            ],
            "notes": [
                {"kind": k, "name": n, "message": m} for (k, n), m in sorted(self.notes.items())
            ],
            "lastApplied": self.last_applied,
        }


def _runs(model: Resource) -> bool:
    """Kinds the reconciler starts and stops itself (the others only inform them)."""
    kinds = {m.MODEL.KIND for m in SOURCE_MODULES}
    return isinstance(model, (BrokerResource, Trigger, Workload)) or model.kind in kinds


def _uses(trig: Trigger, resource: Resource) -> bool:
    if isinstance(resource, BrokerResource):
        return trig.broker_key == resource.key
    if isinstance(resource, Workload):
        return resource.key in workloads_of(trig)
    return False
