"""A Workload scaling a Deployment while the API server cannot be reached: the
actuator retries with growing backoff and ``eventing status`` says why, the events for
that workload wait in the broker (none lost, no retry burnt), and everything else keeps
running. Needs no cluster: the kubeconfig points at a loopback port nobody listens on.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp

from eventing.kube.actuator import KubeActuator
from eventing.resources.refs import Platform
from tests.conftest import SystemFactory
from tests.support.mesh import send, wait_until
from tests.support.subscriber import RecordingSubscriber

TOKEN = "t0ken-that-must-not-leak"


def dead_kubeconfig(tmp_path: Path) -> Path:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: {TOKEN}}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    return path


def manifests(subscriber_url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: web}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  url: "{subscriber_url}/web"
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: to-web}}
spec:
  broker: default
  filter: {{attributes: {{type: web}}}}
  subscriber: {{ref: {{kind: Workload, name: web}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: others}}
spec:
  broker: default
  filter: {{attributes: {{type: other}}}}
  subscriber: {{uri: "{subscriber_url}/other"}}
"""


async def test_unreachable_api_server_is_retried_and_reported_while_the_rest_runs(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    platform = Platform(kubeconfig=str(dead_kubeconfig(tmp_path)))
    running = await system(manifests(subscriber.url), platform=platform)
    workload = running.system.workloads.items["default/web"]  # type: ignore[union-attr]
    actuator = workload.actuator
    assert isinstance(actuator, KubeActuator)

    async with aiohttp.ClientSession() as http:
        for i in range(3):
            await send(http, running, f"w{i}", "web")
            await send(http, running, f"o{i}", "other")
        await subscriber.wait_count(3, "/other")  # the rest keeps delivering

        await wait_until(lambda: (actuator.retry_in or 0) >= 2, 30, "backoff growing past 2 s")
        async with http.get(f"{running.admin_url}/v1/status") as response:
            status: dict[str, Any] = await response.json()
    [web] = [w for w in status["workloads"] if w["name"] == "default/web"]
    assert "unreachable" in web["error"]
    assert web["runtime"] == "kubernetes"
    assert web["target"].startswith("Deployment default/web")
    assert TOKEN not in str(status)
    trigger = running.system.triggers["default/to-web"]
    assert await trigger.subscription.backlog() == 3  # waiting in the broker, not lost
    assert trigger.dispatcher.stats.retried == 0
    assert not subscriber.ids("/web")
