"""What the reconciler does to one Trigger while the system runs (docs/operating.md,
Live reload): add it (subscribe to its running broker, start its loops), remove it
(stop taking events, let attempts on the wire finish within the drain deadline, then
release its backlog), or change it (a new filter keeps the backlog: ``refilter``; a
new subscriber or delivery spec keeps it too: ``Dispatcher.retarget``)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from eventing.app.canary import detach_split, reattach_split
from eventing.app.system import delivery_parts, trigger_runtime
from eventing.errors import ConfigError
from eventing.resources.broker import Broker as BrokerResource
from eventing.resources.desired import fingerprint
from eventing.resources.trigger import Trigger
from triggers.materialize import exact_attributes, materialize

if TYPE_CHECKING:
    from eventing.app.runtime import Running

logger = logging.getLogger(__name__)

#: Supervisor groups (the runtime's names).
BROKERS, DISPATCH = "brokers", "dispatch"
TASK_STOP = 10.0


async def add_trigger(running: Running, model: Trigger) -> None:
    """Subscribe a new trigger to its running broker, start its loops."""
    system = running.system
    broker = system.brokers.get(model.broker_key)
    broker_model = next(
        (b for b in system.resources.of(BrokerResource) if b.key == model.broker_key), None
    )
    if broker is None or broker_model is None:
        raise ConfigError(f"Trigger {model.key}: Broker {model.broker_key} is not running")
    try:
        runtime = trigger_runtime(system, model, broker, broker_model)
    except BaseException:
        await broker.unsubscribe(model.key)  # subscribed before the sink failed
        raise
    system.triggers[model.key] = runtime
    for name, loop in broker.trigger_tasks(model.key):
        running.supervisor.spawn(name, loop, group=BROKERS, restart=True)
    running.supervisor.spawn(f"dispatch {model.key}", runtime.dispatcher.run, group=DISPATCH,
                             restart=True)  # fmt: skip
    logger.info("trigger %s added", model.key)


async def remove_trigger(running: Running, key: str, drain: float) -> None:
    """Stop taking events, let attempts on the wire finish (bounded by the drain
    deadline), then release the backlog."""
    system = running.system
    runtime = system.triggers.pop(key, None)
    if runtime is None:
        return
    deadline = asyncio.get_running_loop().time() + drain
    await running.supervisor.cancel(f"dispatch {key}", TASK_STOP)
    await runtime.dispatcher.stop(deadline)
    for name, _ in runtime.broker.trigger_tasks(key):
        await running.supervisor.cancel(name, TASK_STOP)
    await runtime.broker.unsubscribe(key)
    if system.workloads is not None and (target := workload_of(runtime.resource)):
        system.workloads.detach(target, runtime.subscription)
    detach_split(system.workloads, runtime.subscription, runtime.dispatcher.split)
    if not workloads_of(runtime.resource):  # a workload's sink is shared
        await runtime.sink.close()
    logger.info("trigger %s removed (its backlog released)", key)


async def change_trigger(running: Running, before: Trigger, model: Trigger, force: bool) -> None:
    """A new filter (``refilter``) and/or subscriber and delivery (``retarget``); the
    backlog stays. ``force``: retarget although the trigger did not change (its
    Broker's delivery defaults or its Workload did)."""
    system = running.system
    runtime = system.triggers[model.key]
    if filter_of(before) != filter_of(model):
        await runtime.broker.refilter(
            model.key, materialize(model.spec), exact=exact_attributes(model.spec)
        )
        logger.info("trigger %s: new filter (backlog kept)", model.key)
    rest_changed = fingerprint(before, without=("filter", "filters")) != fingerprint(
        model, without=("filter", "filters")
    )
    if rest_changed or force:
        broker_model = next(
            b for b in system.resources.of(BrokerResource) if b.key == model.broker_key
        )
        old_target = workload_of(runtime.resource)
        workloads = system.workloads
        if workloads is not None and old_target:
            workloads.detach(old_target, runtime.subscription)
        old_split = runtime.dispatcher.split  # a canary's targets: eventing/app/canary.py
        detach_split(workloads, runtime.subscription, old_split)
        try:
            parts = delivery_parts(system, model, runtime.broker, broker_model,
                                   runtime.subscription)  # fmt: skip
        except BaseException:
            if workloads is not None and old_target in workloads.items:
                workloads.attach(old_target, runtime.subscription)
            reattach_split(workloads, runtime.subscription, old_split)
            raise
        runtime.dispatcher.retarget(
            sink=parts.sink,
            policy=parts.policy,
            dead_letter=parts.dead_letter,
            publish_reply=parts.publish_reply,
            fast=parts.fast,
            split=parts.split,
        )
        old_sink, runtime.sink = runtime.sink, parts.sink
        if old_sink is not parts.sink and not old_target:
            await old_sink.close()
        logger.info("trigger %s: now delivers to %s (backlog kept)", model.key,
                    parts.sink.target)  # fmt: skip
    runtime.resource = model


def filter_of(trig: Trigger) -> Any:
    return trig.spec.model_dump(mode="json", include={"filter", "filters"})


def workload_of(trig: Trigger) -> str | None:
    """The Workload a trigger's one subscriber names (a split's targets: detach_split)."""
    ref = trig.spec.subscriber.ref
    if ref is None or ref.kind != "Workload":
        return None
    return f"{ref.namespace or trig.namespace}/{ref.name}"


def workloads_of(trig: Trigger) -> list[str]:
    """Every Workload a trigger delivers to (its subscriber, or each target of a split)."""
    return [
        f"{t.ref.namespace or trig.namespace}/{t.ref.name}"
        for t in trig.spec.subscriber.targets
        if t.ref is not None and t.ref.kind == "Workload"
    ]
