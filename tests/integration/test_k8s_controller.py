"""``eventing run --kubernetes`` without a directory reads its resources from the API
server (our CRDs and Knative's, installed from deploy/), through the same loader as a
directory: a Broker and a Trigger created with kubectl deliver events to a loopback
test subscriber (the test cluster runs no containers, so the subscriber is a URL), and
each resource's status gets a Ready condition saying what eventing made of it; an
invalid one gets validate's message and the rest runs."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from eventing.app.runtime import RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.resources.refs import Platform
from tests.support.k8s import Cluster, deployment_manifest, wait_for
from tests.support.mesh import ce_headers, post
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


async def install(cluster: Cluster, ns: str, subscriber_url: str, tmp_path: Path) -> None:
    """Our CRDs and Knative's, then a Broker, a Trigger to ``subscriber_url`` and a
        Workload whose target does not exist, and a Trigger that does not validate (its
    subscriber is a ConfigMap), all in namespace ``ns``."""
    await asyncio.to_thread(cluster.kubectl, "apply", "-k", str(DEPLOY / "knative-crds"))
    await asyncio.to_thread(cluster.kubectl, "apply", "-k", str(DEPLOY / "crds"))
    await asyncio.to_thread(
        cluster.kubectl, "wait", "--for", "condition=established", "--timeout", "60s",
        "crd/brokers.eventing.knative.dev", "crd/triggers.eventing.knative.dev",
        "crd/workloads.eventing.local",
    )  # fmt: skip
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default, namespace: {ns}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: orders, namespace: {ns}}}
spec:
  broker: default
  filter: {{attributes: {{type: order}}}}
  subscriber: {{uri: "{subscriber_url}/orders"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: odd, namespace: {ns}}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: v1, kind: ConfigMap, name: settings}}}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: ghost, namespace: {ns}}}
spec:
  scaleTargetRef: {{name: ghost}}
  url: "{subscriber_url}/ghost"
""")
    await asyncio.to_thread(cluster.kubectl, "apply", "-n", ns, "-f", str(manifest))


async def test_eventing_run_kubernetes_as_a_user_runs_it(
    k8s_cluster: Cluster, k8s_namespace: str, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """The CLI: ``eventing run --kubernetes --namespace NS --kubeconfig PATH``, no
    directory, as a subprocess."""
    ns = k8s_namespace
    await install(k8s_cluster, ns, subscriber.url, tmp_path)
    proc = EventingProcess(
        None,
        tmp_path / "data",
        "--kubernetes",
        "--namespace",
        ns,
        "--kubeconfig",
        str(k8s_cluster.kubeconfig),
        "--ingress-workers",
        "0",
    )
    await proc.start()
    try:
        async with aiohttp.ClientSession() as http:
            status, body = await post(http, proc.url(f"{ns}/default"), ce_headers("c-1", "order"))
            assert status == 202, body
        [event] = await subscriber.wait_count(1, "/orders")
        assert event.id == "c-1"
    finally:
        assert await proc.terminate(30) == 0


async def test_resources_come_from_the_api_server(
    k8s_cluster: Cluster, k8s_namespace: str, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    ns = k8s_namespace
    await install(k8s_cluster, ns, subscriber.url, tmp_path)

    platform = Platform(kubernetes=True, kubeconfig=str(k8s_cluster.kubeconfig), namespace=ns)
    settings = RuntimeSettings(
        port=0, admin_port=0, store=StoreSettings(data_dir=tmp_path / "data", platform=platform)
    )
    running = await start(None, settings)
    try:
        assert set(running.system.triggers) == {f"{ns}/orders"}
        async with aiohttp.ClientSession() as http:
            status, body = await post(
                http, f"{running.ingress_url}/{ns}/default", ce_headers("o-1", "order")
            )
            assert status == 202, body
        [event] = await subscriber.wait_count(1, "/orders")
        assert event.id == "o-1"

        # What eventing made of each resource goes back on its status.
        def ready(group: str, plural: str, name: str) -> dict[str, Any] | None:
            obj = k8s_cluster.custom.get_namespaced_custom_object(
                group, "v1" if "knative" in group else "v1alpha1", ns, plural, name
            )
            conditions = (obj.get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "Ready"), None)

        broker = await asyncio.to_thread(
            wait_for,
            lambda: ready("eventing.knative.dev", "brokers", "default"),
            timeout=30,
            what="the Broker's Ready condition",
        )
        assert broker["status"] == "True"
        trigger = await asyncio.to_thread(
            wait_for,
            lambda: ready("eventing.knative.dev", "triggers", "orders"),
            timeout=30,
            what="the Trigger's Ready condition",
        )
        assert trigger["status"] == "True"
        ghost = await asyncio.to_thread(
            wait_for,
            lambda: (
                (c := ready("eventing.local", "workloads", "ghost"))
                and c["status"] == "False"
                and c
            ),
            timeout=30,
            what="the Workload's Ready=False condition",
        )
        assert ghost["reason"] == "ScaleTargetError"
        # An invalid object does not stop the rest: it gets validate's message.
        odd = await asyncio.to_thread(
            wait_for,
            lambda: ready("eventing.knative.dev", "triggers", "odd"),
            timeout=30,
            what="the invalid Trigger's Ready condition",
        )
        assert odd["status"] == "False"
        assert odd["reason"] == "Invalid"
        assert "spec.subscriber.ref.kind" in odd["message"]
        assert "a ref may name a Workload" in odd["message"]
        assert f"Deployment {ns}/ghost (apps/v1) not found" in ghost["message"]
    finally:
        await stop(running, settings)


async def test_a_split_triggers_status_names_its_primary_uri_and_every_target(
    k8s_cluster: Cluster, k8s_namespace: str, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """Knative's ``status.subscriberUri`` is a URI: for a canary split, the primary
    target's (the largest percent; a Workload as the address it delivers to), with
    every target and its percent in ``status.annotations`` and the Ready message."""
    ns = k8s_namespace
    await install(k8s_cluster, ns, subscriber.url, tmp_path)
    await asyncio.to_thread(
        k8s_cluster.apps.create_namespaced_deployment, ns, deployment_manifest("web", 0)
    )
    split = tmp_path / "split.yaml"
    split.write_text(f"""apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: web, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  url: "{subscriber.url}/web"
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: canary, namespace: {ns}}}
spec:
  broker: default
  subscriber:
    split:
    - {{uri: "{subscriber.url}/next", percent: 10}}
    - {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: web}}, percent: 90}}
""")
    await asyncio.to_thread(k8s_cluster.kubectl, "apply", "-n", ns, "-f", str(split))
    platform = Platform(kubernetes=True, kubeconfig=str(k8s_cluster.kubeconfig), namespace=ns)
    settings = RuntimeSettings(
        port=0, admin_port=0, store=StoreSettings(data_dir=tmp_path / "data", platform=platform)
    )
    running = await start(None, settings)
    try:

        def status(name: str) -> dict[str, Any] | None:
            obj = k8s_cluster.custom.get_namespaced_custom_object(
                "eventing.knative.dev", "v1", ns, "triggers", name
            )
            found: dict[str, Any] | None = obj.get("status")
            return found if found and found.get("subscriberUri") else None

        shown = await asyncio.to_thread(
            wait_for, partial(status, "canary"), timeout=30, what="the split Trigger's status"
        )
        assert shown["subscriberUri"] == f"{subscriber.url}/web"
        assert json.loads(shown["annotations"]["eventing.local/split"]) == [
            {"uri": f"{subscriber.url}/next", "percent": 10},
            {"uri": f"{subscriber.url}/web", "percent": 90},
        ]
        [ready] = [c for c in shown["conditions"] if c["type"] == "Ready"]
        assert ready["status"] == "True"
        assert ready["message"] == (
            f"split: 10% to {subscriber.url}/next, 90% to {subscriber.url}/web"
        )
        # A plain subscriber's URI is its URL, and it has no split annotation.
        orders = await asyncio.to_thread(
            wait_for, partial(status, "orders"), timeout=30, what="the plain Trigger's status"
        )
        assert orders["subscriberUri"] == f"{subscriber.url}/orders"
        assert "eventing.local/split" not in (orders.get("annotations") or {})
    finally:
        await stop(running, settings)
