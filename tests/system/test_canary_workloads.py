"""A canary split over two Workloads with real subprocess replicas: each version
scales on its own share of the trigger's backlog (the events routed to it and not
finished, plus its percent of those not routed yet), every event is handled once by
the version it was routed to, and both go back to zero."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from eventing.autoscaler.decide import Decision
from eventing.delivery.split import apportion, key_position
from tests.conftest import SystemFactory
from tests.support.mesh import wait_until
from tests.support.subscriber import RecordingSubscriber

REPLICA = str(Path(__file__).resolve().parents[1] / "support" / "replica_app.py")
TRIGGER = "default/orders"


def workload(name: str, report_url: str) -> str:
    return f"""apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: {name}}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  env:
    - {{name: WORK_SECONDS, value: "0.4"}}
    - {{name: REPORT_URL, value: "{report_url}"}}
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling:
    maxReplicas: 12
    concurrencyPerReplica: 1
    keepAlive: fixed
    cooldownPeriod: 1
    stabilizationWindowSeconds: 1
    drainHorizonSeconds: 2
  terminationGracePeriodSeconds: 10
"""


def manifests(url: str) -> str:
    return "---\n".join(
        [
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n",
            workload("stable", f"{url}/stable"),
            workload("canary", f"{url}/canary"),
            """apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: orders}
spec:
  broker: default
  delivery: {ordering: ordered}
  subscriber:
    split:
      - {ref: {apiVersion: eventing.local/v1alpha1, kind: Workload, name: stable}, percent: 80}
      - {ref: {apiVersion: eventing.local/v1alpha1, kind: Workload, name: canary}, percent: 20}
""",
        ]
    )


@dataclass
class Seen:
    """What the scalers saw, sampled synchronously at every decision."""

    peak: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    problems: list[str] = field(default_factory=list)


async def test_each_version_scales_on_its_own_share(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(subscriber.url))
    workloads = running.system.workloads
    assert workloads is not None
    trig = running.system.triggers[TRIGGER]
    split = trig.dispatcher.split
    stable, canary = workloads.items["default/stable"], workloads.items["default/canary"]
    seen = Seen()

    def decided(key: str, decision: Decision, previous: int) -> None:
        seen.peak[key] = max(seen.peak.get(key, 0), decision.replicas)
        # One synchronous look at the whole: the two shares are the trigger's backlog,
        # each the events routed to it plus its part of the rest.
        backlog = trig.subscription.local_backlog()
        routed = [r.routed for r in split.routes]
        rest = apportion(max(0, backlog - sum(routed)), split.routes)
        shares = [stable.scaler.backlog(), canary.scaler.backlog()]
        want = [routed[0] + rest[0], routed[1] + rest[1]]
        seen.samples += 1
        if shares != want:
            seen.problems.append(f"backlog {backlog} routed {routed}: {shares} != {want}")

    workloads.listeners.append(decided)
    # Ordering is on, so each partition key sticks to one version: keys chosen by their
    # position send exactly 24 events to the stable version and 6 to the canary.
    keys = [f"customer-{i}" for i in range(400)]
    to_stable = [k for k in keys if key_position(k) < 8000][:24]
    to_canary = [k for k in keys if key_position(k) >= 8000][:6]
    ids = [f"o-{k}" for k in to_stable + to_canary]
    async with aiohttp.ClientSession() as http:
        batch = [
            {"specversion": "1.0", "id": i, "source": "/t", "type": "order", "partitionkey": i[2:]}
            for i in ids
        ]
        async with http.post(
            f"{running.ingress_url}/default/default",
            data=json.dumps(batch),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        ) as r:
            assert r.status == 202

    def handled(path: str) -> list[str]:
        return [json.loads(r.body)["id"] for r in subscriber.received if r.path == path]

    await wait_until(
        lambda: len(handled("/stable")) + len(handled("/canary")) >= len(ids), 90, "every event"
    )
    await wait_until(
        lambda: sum(r.delivered for r in split.routes) == len(ids), 30, "every answer counted"
    )
    on_stable, on_canary = handled("/stable"), handled("/canary")
    assert sorted(on_stable) == sorted(f"o-{k}" for k in to_stable)  # once each, by the
    assert sorted(on_canary) == sorted(f"o-{k}" for k in to_canary)  # version of its key
    stable_route, canary_route = split.routes
    assert (stable_route.delivered, canary_route.delivered) == (len(on_stable), len(on_canary))
    assert stable_route.workload == "default/stable"
    assert canary_route.workload == "default/canary"
    assert not seen.problems, seen.problems[:5]
    assert seen.samples > 0
    # Both versions scaled out from zero on their own share; the stable version, with
    # four times the events, asked for more replicas than the canary.
    assert seen.peak["default/canary"] >= 1
    assert seen.peak["default/stable"] > seen.peak["default/canary"]
    await wait_until(
        lambda: (
            stable.pool.desired == 0 == canary.pool.desired
            and not stable.pool.replicas
            and not canary.pool.replicas
        ),
        60,
        "both versions back to zero",
    )
