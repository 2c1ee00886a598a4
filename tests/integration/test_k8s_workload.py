"""Workloads that scale a real Deployment on the test control plane (kube-apiserver,
controller-manager, scheduler, kwok fake nodes: ``scripts/servers up kubernetes``).

kwok pods run no containers, so nothing in the cluster can answer an event. The
Workload therefore names a delivery ``url`` pointing to a loopback test subscriber: the
actuator scales the Deployment through its scale subresource and reads its pods'
states, and delivery goes to the URL, admitted at ``concurrencyPerReplica`` per Ready
pod. That is exactly how a Workload with a real Service behaves, with the Service
replaced by the URL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from eventing.app import cli
from eventing.app.runtime import Running
from eventing.kube.actuator import KubeActuator
from eventing.resources.refs import Platform
from eventing.workloads.decisionlog import FILE_NAME, read_decisions
from tests.conftest import SystemFactory
from tests.support.k8s import Cluster, deployment_manifest, wait_for
from tests.support.mesh import ce_headers, post, wait_until

BURST = 24
MAX_REPLICAS = 4


class GateSubscriber:
    """Records event ids; holds every delivery until ``gate`` opens, so the backlog and
    in-flight work stay up while the test watches the Deployment scale out."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.gate = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        async with asyncio.timeout(120):
            await self.gate.wait()
        self.ids.append(request.headers["ce-id"])
        return web.Response(status=202)

    async def stop(self) -> None:
        self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def gated() -> AsyncIterator[GateSubscriber]:
    subscriber = GateSubscriber()
    await subscriber.start()
    yield subscriber
    await subscriber.stop()


def manifests(
    ns: str, target: str, url: str, *, kind: str = "Deployment", api: str = "apps/v1"
) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default, namespace: {ns}}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: web, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: {api}, kind: {kind}, name: {target}}}
  url: "{url}"
  scaling:
    maxReplicas: {MAX_REPLICAS}
    concurrencyPerReplica: 1
    keepAlive: fixed
    cooldownPeriod: 1
    stabilizationWindowSeconds: 1
    drainHorizonSeconds: 2
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: to-web, namespace: {ns}}}
spec:
  broker: default
  subscriber: {{ref: {{kind: Workload, name: web}}}}
  delivery: {{timeout: PT3M}}  # the gate holds deliveries while pods come up
"""


async def publish(ingress: str, ns: str, ids: list[str]) -> None:
    async with aiohttp.ClientSession() as http:
        for event_id in ids:
            status, body = await post(http, f"{ingress}/{ns}/default", ce_headers(event_id))
            assert status == 202, body


def spec_replicas(cluster: Cluster, ns: str) -> int:
    scale = cluster.apps.read_namespaced_deployment_scale("web", ns, _request_timeout=10)
    return int(scale.spec.replicas or 0)


async def test_deployment_scales_from_zero_on_a_burst_to_zero_and_back(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    gated: GateSubscriber,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = k8s_namespace
    await asyncio.to_thread(
        k8s_cluster.apps.create_namespaced_deployment,
        ns,
        deployment_manifest("web", 0),
        _request_timeout=10,
    )
    data = tmp_path / "data"
    running = await system(
        manifests(ns, "web", f"{gated.url}/events"),
        data_dir=data,
        platform=Platform(kubeconfig=str(k8s_cluster.kubeconfig)),
    )
    workload = running.system.workloads.items[f"{ns}/web"]  # type: ignore[union-attr]
    actuator = workload.actuator
    assert isinstance(actuator, KubeActuator)
    await wait_until(lambda: actuator.observed_at is not None, 30, "a first observation")
    assert actuator.desired == 0
    assert actuator.count("ready") == 0

    ids = [f"burst-{i}" for i in range(BURST)]
    await publish(running.ingress_url, ns, ids)

    # 0 -> N through the scale subresource; the pods land on kwok nodes and get Ready.
    ready = await asyncio.to_thread(
        wait_for,
        lambda: pods if len(pods := k8s_cluster.ready_pods(ns, "app=web")) >= 2 else None,
        timeout=90,
        what="at least 2 Ready pods of Deployment web",
    )
    nodes = await asyncio.to_thread(k8s_cluster.kwok_nodes)
    assert {pod.spec.node_name for pod in ready} <= set(nodes)
    await wait_until(lambda: actuator.count("ready") >= 2, 30, "the actuator sees 2 ready")
    assert 2 <= await asyncio.to_thread(spec_replicas, k8s_cluster, ns) <= MAX_REPLICAS

    # Decisions and reasons show in `eventing status` as for local workloads.
    code = await asyncio.to_thread(cli.main, ["status", "--admin", running.admin_url, "--json"])
    assert code == 0
    status: dict[str, Any] = json.loads(capsys.readouterr().out)
    [shown] = [w for w in status["workloads"] if w["name"] == f"{ns}/web"]
    assert shown["runtime"] == "kubernetes"
    assert shown["desired"] >= 2
    assert shown["ready"] >= 2
    assert shown["reason"]
    assert shown["error"] is None
    assert shown["patches"] >= 1

    gated.gate.set()
    await wait_until(lambda: set(ids) <= set(gated.ids), 60, "every event delivered")
    assert sorted(gated.ids) == sorted(ids)  # each exactly once

    # Idle: back to 0 replicas and no pods.
    await asyncio.to_thread(
        wait_for,
        lambda: (
            spec_replicas(k8s_cluster, ns) == 0
            and not k8s_cluster.core.list_namespaced_pod(ns, label_selector="app=web").items
        ),
        timeout=90,
        what="Deployment web back to 0 replicas and no pods",
    )
    decisions = await written_decisions(running, data)
    assert decisions[0]["from"] == 0
    assert decisions[0]["to"] >= 1
    assert max(d["to"] for d in decisions) >= 2
    assert decisions[-1]["to"] == 0
    assert all(d["reason"] for d in decisions)

    # ... and back: one event at zero pokes the scaler, a pod comes up, it is delivered.
    await publish(running.ingress_url, ns, ["later"])
    await wait_until(lambda: "later" in gated.ids, 90, "the later event delivered")
    decisions = await written_decisions(running, data)
    assert len([d for d in decisions if d["from"] == 0]) == 2
    trigger = running.system.triggers[f"{ns}/to-web"]
    assert trigger.dispatcher.stats.retried == 0  # waiting for pods burnt no retry


async def written_decisions(running: Running, data: Path) -> list[dict[str, Any]]:
    """``decisions.jsonl`` (and its rotated file) once every decision so far is in."""
    assert running.system.workloads is not None
    await running.system.workloads.decision_log.flush()
    return read_decisions(data / FILE_NAME)


@pytest.mark.parametrize(
    ("target", "kind", "api", "error"),
    [
        ("missing", "Deployment", "apps/v1", "Deployment {ns}/missing (apps/v1) not found"),
        ("job", "Job", "batch/v1", "Job has no scale subresource"),
    ],
    ids=["missing-deployment", "no-scale-subresource"],
)
async def test_bad_targets_show_in_status_while_the_rest_keeps_running(
    k8s_cluster: Cluster,
    k8s_namespace: str,
    system: SystemFactory,
    gated: GateSubscriber,
    target: str,
    kind: str,
    api: str,
    error: str,
) -> None:
    ns = k8s_namespace
    text = (
        manifests(ns, target, f"{gated.url}/events", kind=kind, api=api)
        + f"""---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: others, namespace: {ns}}}
spec:
  broker: default
  filter: {{attributes: {{type: other}}}}
  subscriber: {{uri: "{gated.url}/others"}}
"""
    )
    running = await system(text, platform=Platform(kubeconfig=str(k8s_cluster.kubeconfig)))
    actuator = running.system.workloads.items[f"{ns}/web"].actuator  # type: ignore[union-attr]
    gated.gate.set()
    async with aiohttp.ClientSession() as http:
        status, _ = await post(
            http, f"{running.ingress_url}/{ns}/default", ce_headers("o1", "other")
        )
        assert status == 202
    await wait_until(lambda: "o1" in gated.ids, 30, "the other trigger delivering")
    expected = error.format(ns=ns)
    await wait_until(lambda: expected in (actuator.error or ""), 30, f"status error {expected!r}")
    async with aiohttp.ClientSession() as http, http.get(f"{running.admin_url}/v1/status") as r:
        shown = [w for w in (await r.json())["workloads"] if w["name"] == f"{ns}/web"]
    assert expected in shown[0]["error"]
