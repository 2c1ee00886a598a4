"""Live reconcile against the real API server: ``eventing run --kubernetes`` (a
subprocess) watches its kinds and applies Triggers and a Workload created, changed and
deleted with kubectl while events flow; no accepted event is lost (id sets per phase),
status conditions are written back, and an invalid change gets ``validate``'s message
on the object's status while its last good version keeps running.

The Workload targets a Deployment on kwok nodes (no container runs), so it delivers to
the ``url`` it names (the loopback test subscriber) and its target's ``spec.replicas``
shows it scaled, then scaled to zero once deleted."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path
from typing import Any

import pytest

from eventing.kube.api import KubeApi, KubeError, WatchHandle
from tests.integration.test_k8s_controller import DEPLOY
from tests.support.k8s import Cluster, deployment_manifest, wait_for
from tests.support.live import Sender, delivered, triggers, until, wait_status
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber


def trigger(ns: str, name: str, type_: str, subscriber: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}, namespace: {ns}}}
spec:
  broker: default
  filter: {{attributes: {{type: {type_}}}}}
  subscriber: {subscriber}
"""


def workload(ns: str, url: str) -> str:
    return f"""apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: worker, namespace: {ns}}}
spec:
  scaleTargetRef: {{name: web}}
  url: "{url}"
  scaling: {{minReplicas: 1, maxReplicas: 2}}
"""


async def kubectl(cluster: Cluster, tmp_path: Path, verb: str, text: str, ns: str) -> None:
    path = tmp_path / "object.yaml"
    path.write_text(text)
    await asyncio.to_thread(cluster.kubectl, verb, "-n", ns, "-f", str(path))


def condition(cluster: Cluster, ns: str, group: str, plural: str, name: str) -> dict[str, Any]:
    version = "v1" if "knative" in group else "v1alpha1"
    obj = cluster.custom.get_namespaced_custom_object(group, version, ns, plural, name)
    status = obj.get("status") or {}
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c["type"] == "Ready"), {}
    )
    return {**ready, "observedGeneration": status.get("observedGeneration"),
            "generation": obj["metadata"]["generation"]}  # fmt: skip


async def wait_condition(
    cluster: Cluster, ns: str, plural: str, name: str, check: Any, group: str = ""
) -> dict[str, Any]:
    group = group or "eventing.knative.dev"
    result: dict[str, Any] = await asyncio.to_thread(
        wait_for,
        lambda: (c := condition(cluster, ns, group, plural, name)) and check(c) and c,
        timeout=30,
        what=f"the Ready condition of {plural}/{name}",
    )
    return result


async def test_live_reconcile_from_the_api_server(
    k8s_cluster: Cluster, k8s_namespace: str, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    ns, url = k8s_namespace, subscriber.url
    for kustomization in ("knative-crds", "crds"):
        await asyncio.to_thread(k8s_cluster.kubectl, "apply", "-k", str(DEPLOY / kustomization))
    await asyncio.to_thread(
        k8s_cluster.kubectl, "wait", "--for", "condition=established", "--timeout", "60s",
        "crd/brokers.eventing.knative.dev", "crd/triggers.eventing.knative.dev",
        "crd/workloads.eventing.local",
    )  # fmt: skip
    await asyncio.to_thread(
        k8s_cluster.apps.create_namespaced_deployment, ns, deployment_manifest("web", 0)
    )
    broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"
    await kubectl(k8s_cluster, tmp_path, "apply", broker, ns)
    await kubectl(k8s_cluster, tmp_path, "apply", trigger(ns, "ta", "a", f'{{uri: "{url}/a"}}'), ns)

    proc = EventingProcess(
        None, tmp_path / "data", "--kubernetes", "--namespace", ns,
        "--kubeconfig", str(k8s_cluster.kubeconfig), "--ingress-workers", "0",
        "--drain-timeout", "5",
    )  # fmt: skip
    await proc.start()
    try:
        await _scenario(k8s_cluster, ns, url, tmp_path, proc, subscriber)
    finally:
        assert await proc.terminate(30) == 0


async def _scenario(
    k8s_cluster: Cluster,
    ns: str,
    url: str,
    tmp_path: Path,
    proc: EventingProcess,
    subscriber: RecordingSubscriber,
) -> None:
    admin = proc.admin_url

    def replicas() -> int:
        return int(k8s_cluster.apps.read_namespaced_deployment("web", ns).spec.replicas or 0)

    sender = Sender(proc.url(f"{ns}/default"), types=("a", "b", "c", "w"))
    task = asyncio.create_task(sender.run())
    try:
        sender.phase = "p0"
        await sender.wait_more()

        sender.phase = "t-add-b"
        await kubectl(k8s_cluster, tmp_path, "apply",
                      trigger(ns, "tb", "b", f'{{uri: "{url}/b"}}'), ns)  # fmt: skip
        await wait_status(admin, lambda s: f"{ns}/tb" in triggers(s))
        sender.phase = "p1"
        await wait_condition(k8s_cluster, ns, "triggers", "tb", lambda c: c.get("status") == "True")
        await sender.wait_more()

        sender.phase = "t-change-a"
        await kubectl(k8s_cluster, tmp_path, "apply",
                      trigger(ns, "ta", "c", f'{{uri: "{url}/a2"}}'), ns)  # fmt: skip
        await wait_status(admin, lambda s: triggers(s)[f"{ns}/ta"]["subscriber"].endswith("/a2"))
        sender.phase = "p2"
        changed = await wait_condition(
            k8s_cluster, ns, "triggers", "ta", lambda c: c.get("observedGeneration") == 2
        )
        assert changed["status"] == "True"
        await sender.wait_more()

        # A Workload (Deployment target, delivering to a URL) and its Trigger.
        sender.phase = "t-add-w"
        await kubectl(k8s_cluster, tmp_path, "apply", workload(ns, f"{url}/w1"), ns)
        tw = trigger(ns, "tw", "w", "{ref: {apiVersion: eventing.local/v1alpha1, "
                     "kind: Workload, name: worker}}")  # fmt: skip
        await kubectl(k8s_cluster, tmp_path, "apply", tw, ns)
        await wait_status(admin, lambda s: f"{ns}/tw" in triggers(s))
        await asyncio.to_thread(
            wait_for, lambda: replicas() >= 1, timeout=30, what="the Deployment scaled up"
        )
        sender.phase = "p3"
        await sender.wait_more()
        sender.phase = "t-change-w"
        await kubectl(k8s_cluster, tmp_path, "apply", workload(ns, f"{url}/w2"), ns)
        await wait_condition(k8s_cluster, ns, "workloads", "worker",
                             lambda c: c.get("observedGeneration") == 2,
                             group="eventing.local")  # fmt: skip
        sender.phase = "p4"
        await sender.wait_more()

        # An invalid change: validate's message on the object; the last good version runs.
        caught_up = {"p1", "p2", "p3", "p4"}
        await until(lambda: sender.ids("b", caught_up) <= delivered(subscriber, "/b"), "tb")
        sender.phase = "t-broken"
        odd = "{ref: {apiVersion: v1, kind: ConfigMap, name: settings}}"
        await kubectl(k8s_cluster, tmp_path, "apply", trigger(ns, "tb", "b", odd), ns)
        invalid = await wait_condition(
            k8s_cluster, ns, "triggers", "tb", lambda c: c.get("status") == "False"
        )
        assert invalid["reason"] == "Invalid"
        assert "ConfigMap" in invalid["message"], invalid
        body = await wait_status(admin, lambda s: bool(s["reconcile"]["rejected"]))
        assert f"{ns}/tb" in triggers(body)  # still running, as it was
        sender.phase = "p5"
        await sender.wait_more()

        sender.phase = "t-delete"
        await asyncio.to_thread(
            k8s_cluster.kubectl, "delete", "-n", ns, "triggers.eventing.knative.dev/tb",
            "triggers.eventing.knative.dev/tw", "workloads.eventing.local/worker",
        )  # fmt: skip
        await wait_status(
            admin,
            lambda s: (
                f"{ns}/tb" not in triggers(s)
                and f"{ns}/tw" not in triggers(s)
                and not s["workloads"]
            ),
        )
        await asyncio.to_thread(
            wait_for,
            lambda: replicas() == 0,
            timeout=30,
            what="the deleted Workload's Deployment scaled to zero",
        )
        sender.phase = "p6"
        await sender.wait_more()
    finally:
        sender.stopped = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    if sender.accepted:  # the checks, once every change was applied
        phases = list(dict.fromkeys(p for _, _, p in sender.accepted))
        cut = phases.index("t-change-a")
        stable_a, stable_c = set(phases[:cut]), set(phases[cut + 1 :])
        stable_b = set(phases[phases.index("t-add-b") + 1 : phases.index("t-delete")])
        stable_w = set(phases[phases.index("t-add-w") + 1 : phases.index("t-delete")])
        stable_w2 = set(phases[phases.index("t-change-w") + 1 : phases.index("t-delete")])

        def got(*paths: str) -> set[str]:
            return set().union(*(delivered(subscriber, p) for p in paths))

        await until(lambda: sender.ids("a", stable_a) <= got("/a", "/a2"), "ta's old filter")
        await until(lambda: sender.ids("c", stable_c) <= got("/a2"), "ta's new filter")
        await until(lambda: sender.ids("b", stable_b) <= got("/b"), "tb")
        await until(lambda: sender.ids("w", stable_w) <= got("/w1", "/w2"), "tw")
        await until(lambda: sender.ids("w", stable_w2) <= got("/w2"), "tw changed")
        assert got("/a") <= sender.ids("a", {*stable_a, "t-change-a"})
        assert got("/a2") <= sender.ids("a", {*stable_a, "t-change-a"}) | sender.ids(
            "c", {"t-change-a", *stable_c}
        )
        b_window = set(phases[phases.index("t-add-b") : phases.index("t-delete") + 1])
        assert got("/b") <= sender.ids("b", b_window)
        w_window = set(phases[phases.index("t-add-w") : phases.index("t-delete") + 1])
        assert got("/w1", "/w2") <= sender.ids("w", w_window)
        assert not sender.ids("w", stable_w2) & got("/w1")


async def test_a_watch_from_a_compacted_version_says_410(
    k8s_cluster: Cluster, k8s_namespace: str
) -> None:
    """What makes the feed list again (``ClusterFeed._follow``): the API server's
    "too old resource version", as ``KubeError(410)``."""
    await asyncio.to_thread(k8s_cluster.kubectl, "apply", "-k", str(DEPLOY / "knative-crds"))
    api = await asyncio.to_thread(KubeApi.connect, str(k8s_cluster.kubeconfig))
    try:
        _, version = await asyncio.to_thread(
            api.list_with_version, "eventing.knative.dev/v1", "triggers", k8s_namespace
        )
        assert version
        watch = functools.partial(
            api.watch_objects, "eventing.knative.dev/v1", "triggers", k8s_namespace, "1", 5
        )
        with pytest.raises(KubeError) as raised:
            await asyncio.to_thread(lambda: list(watch(WatchHandle())))
        assert raised.value.status == 410
    finally:
        await asyncio.to_thread(api.close)
