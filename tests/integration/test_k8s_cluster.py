"""The test control plane behaves like a cluster: a Deployment's pods are created by the
controller manager, bound by the scheduler to kwok's fake nodes and become Ready, and
the scale subresource (what the Kubernetes actuator drives) takes them to 0 and back.
"""

from __future__ import annotations

from tests.support.k8s import Cluster, deployment_manifest, wait_for


def test_deployment_pods_become_ready_on_kwok_nodes_and_scale_to_zero_and_back(
    k8s_cluster: Cluster, k8s_namespace: str
) -> None:
    apps, ns = k8s_cluster.apps, k8s_namespace
    apps.create_namespaced_deployment(ns, deployment_manifest("web", 3), _request_timeout=10)

    pods = wait_for(
        lambda: ready if len(ready := k8s_cluster.ready_pods(ns, "app=web")) == 3 else None,
        timeout=90,
        what="3 Ready pods of Deployment web",
    )
    assert {pod.spec.node_name for pod in pods} <= set(k8s_cluster.kwok_nodes())
    wait_for(
        lambda: apps.read_namespaced_deployment_status("web", ns).status.ready_replicas == 3,
        timeout=60,
        what="Deployment web status.readyReplicas == 3",
    )

    scale = apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 0}})
    assert not scale.spec.replicas  # 0 is omitted from the answer
    wait_for(
        lambda: not k8s_cluster.core.list_namespaced_pod(ns, label_selector="app=web").items,
        timeout=90,
        what="every pod of web deleted after scaling to 0",
    )
    assert not apps.read_namespaced_deployment_status("web", ns).status.ready_replicas

    current = apps.read_namespaced_deployment_scale("web", ns)
    current.spec.replicas = 3
    apps.replace_namespaced_deployment_scale("web", ns, current)
    wait_for(
        lambda: len(k8s_cluster.ready_pods(ns, "app=web")) == 3,
        timeout=90,
        what="3 Ready pods again after scaling back to 3",
    )
    # The Deployment's status follows its pods' readiness a moment later.
    wait_for(
        lambda: apps.read_namespaced_deployment_scale("web", ns).status.replicas == 3,
        timeout=60,
        what="the scale subresource's status.replicas == 3",
    )
