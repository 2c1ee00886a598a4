"""``eventing run --kubernetes`` without a directory reads its resources from the API
server (our CRDs and Knative's, installed from deploy/), through the same loader as a
directory: a Broker and a Trigger created with kubectl deliver events to a loopback
test subscriber (the test cluster runs no containers, so the subscriber is a URL)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from eventing.app.runtime import RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.resources.refs import Platform
from tests.support.k8s import Cluster
from tests.support.mesh import ce_headers, post
from tests.support.subscriber import RecordingSubscriber

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


async def test_resources_come_from_the_api_server(
    k8s_cluster: Cluster, k8s_namespace: str, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    import asyncio

    ns = k8s_namespace
    await asyncio.to_thread(k8s_cluster.kubectl, "apply", "-k", str(DEPLOY / "knative-crds"))
    await asyncio.to_thread(k8s_cluster.kubectl, "apply", "-k", str(DEPLOY / "crds"))
    await asyncio.to_thread(
        k8s_cluster.kubectl, "wait", "--for", "condition=established", "--timeout", "60s",
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
  subscriber: {{uri: "{subscriber.url}/orders"}}
""")
    await asyncio.to_thread(k8s_cluster.kubectl, "apply", "-n", ns, "-f", str(manifest))

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
    finally:
        await stop(running, settings)
