"""The status document behind ``eventing status`` and ``GET /v1/status``."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from eventing.app.aging import AgingSubscription
from eventing.app.canary import split_status

if TYPE_CHECKING:
    from eventing.app.runtime import Running


def system_status(running: Running) -> dict[str, Any]:
    system = running.system
    brokers = []
    for broker in system.brokers.values():
        stored = broker.status()
        brokers.append(
            {
                "name": broker.key,
                "class": broker.broker_class,
                "durable": broker.durable,
                "ready": stored.ready,
                "detail": stored.detail,
                "url": f"{running.ingress_url}/{broker.key}",
                "storedEvents": stored.stored_events,
                "storedBytes": stored.stored_bytes,
                "dropped": {f"{t or '*'}:{r}": n for (t, r), n in broker.drops().items()},
                **stored.extra,
            }
        )
    queues = system.dead_letter_queues()
    triggers = []
    for key, trig in system.triggers.items():
        stats = trig.dispatcher.stats
        dead = sum(q.depths().get(key, 0) for q in queues)
        triggers.append(
            {
                "name": key,
                "broker": trig.broker.key,
                "subscriber": trig.sink.target,
                "backlog": trig.subscription.cached_backlog(),
                "oldestAge": _oldest_age(trig.subscription),
                "inFlight": stats.in_flight,
                "delivered": stats.delivered,
                "failed": stats.failed,
                "retried": stats.retried,
                "deadLettered": stats.dead_lettered,
                "dlqDepth": dead,
                "replies": stats.replies,
                "concurrencyLimit": int(trig.dispatcher.limit.limit),
                "lastError": stats.last_error,
                # A canary: per target, its percent and what it delivered and failed.
                "split": split_status(trig.dispatcher.split) if trig.split_trigger else None,
            }
        )
    sources = [
        {**dataclasses.asdict(s.health), "drops": dict(getattr(s, "drops", {}))}
        for s in running.sources
    ]
    workloads = []
    if system.workloads is not None:
        for key, w in system.workloads.items.items():
            obs, decision = w.scaler.last_obs, w.scaler.last
            workloads.append(
                {
                    "name": key,
                    "ready": w.actuator.count("ready"),
                    "starting": w.actuator.count("starting"),
                    "draining": w.actuator.count("draining"),
                    "desired": w.actuator.desired,
                    "backlog": obs.backlog if obs else 0,
                    "inFlight": w.router.in_flight,
                    "arrivalRate": round(obs.arrival_rate, 3) if obs else 0.0,
                    "serviceRate": round(obs.service_rate, 3) if obs and obs.service_rate else None,
                    "startupTime": round(obs.startup_time, 3) if obs and obs.startup_time else None,
                    "reason": decision.reason if decision else None,
                    "error": w.actuator.error,
                    **w.actuator.details(),
                }
            )
    jobs = []
    if system.workloads is not None:
        for key, runner in system.workloads.jobs.items():
            jobs.append(
                {
                    "name": key,
                    "running": runner.running,
                    "queued": runner.queued,
                    "parallelism": runner.parallelism,
                    "finished": dict(runner.finished),
                }
            )
    return {
        "process": running.process,
        "uptime": round(time.time() - running.started, 1),
        "ingress": running.ingress_url,
        "admin": running.admin_url,
        "brokers": brokers,
        "triggers": triggers,
        "sources": sources,
        "workloads": workloads,
        "jobs": jobs,
        **({"reconcile": running.reconciler.status()} if running.reconciler is not None else {}),
    }


def _oldest_age(subscription: object) -> float | None:
    """Seconds since the oldest unfinished event arrived (see ``eventing.app.aging``)."""
    if isinstance(subscription, AgingSubscription):
        age = subscription.oldest_age()
        return None if age is None else round(age, 1)
    return None
