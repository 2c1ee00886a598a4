"""deploy/ installs on a real control plane, and its RBAC is least privilege.

Each overlay is applied with ``kubectl apply -k`` (the kubectl ``scripts/servers``
builds) and the data-plane Deployment's pods become Ready on kwok nodes. Each run
installs into a namespace of its own (``eventing-<run>``, through a kustomization over
the overlay, as a user installing elsewhere would write it) with its own ClusterRole
and ClusterRoleBinding, so two runs at once, or a run and a leftover of a killed one,
never share an object; everything of the run is deleted at the end, and leftovers of
runs killed more than an hour ago are deleted at the start. Then the
ServiceAccount's permissions are checked two ways: SubjectAccessReviews for every call
the data plane makes (``DATAPLANE_CALLS``, kept beside eventing/kube) and for calls it
must not be able to make; and real requests sent while impersonating the
ServiceAccount, one allowed (scaling a Deployment through the scale subresource) and
several forbidden (403).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eventing.app import crds
from eventing.app.registry import kind_registry
from eventing.app.runtime import RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.kube.api import split_api_version
from eventing.kube.feed import served_kinds
from eventing.resources.refs import Platform
from tests.support.k8s import ROOT, Cluster, deployment_manifest, wait_for
from tests.support.mesh import ce_headers, post
from tests.support.subscriber import RecordingSubscriber

DEPLOY = ROOT / "deploy"
OVERLAYS = ("embedded", "rabbitmq", "kafka")  # kafka last: its pods need no volume
RUN = uuid.uuid4().hex[:8]
#: This run's namespace, in place of the manifests' ``eventing``.
NAMESPACE = f"eventing-{RUN}"
#: This run's ClusterRole and ClusterRoleBinding, in place of ``eventing-dataplane``.
ROLE = f"eventing-dataplane-{RUN}"
#: Marks the namespace of a run (its value: the run); leftovers older than
#: STALE_AFTER seconds are deleted by the next run.
RUN_LABEL = "eventing.local/test-deploy"
STALE_AFTER = 3600.0
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:eventing-dataplane"
ACCOUNT_GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"]
DATAPLANE = "app.kubernetes.io/name=eventing-dataplane"


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{sub}"


def _served_kind_calls() -> list[Call]:
    """For every kind ``eventing run --kubernetes`` loads from the cluster: ``list`` and
    ``watch`` it (eventing/kube/watch.py applies changes live), and ``patch`` its status
    subresource (eventing/kube/status.py writes Ready back)."""
    calls = set()
    for api_version, kind in served_kinds(kind_registry()):
        group, plural = split_api_version(api_version)[0], crds.plural(kind)
        calls.add(Call("list", group, plural))
        calls.add(Call("watch", group, plural))
        calls.add(Call("patch", group, plural, "status"))
    return sorted(calls, key=str)


#: Every call the data plane makes (eventing/kube, listed in docs/kubernetes.md): load
#: the kinds it serves and write their status; read and scale a workload's target;
#: count the target's pods.
DATAPLANE_CALLS: tuple[Call, ...] = (
    *_served_kind_calls(),
    Call("get", "apps", "deployments"),
    Call("get", "apps", "statefulsets"),
    Call("get", "apps", "deployments", "scale"),
    Call("patch", "apps", "deployments", "scale"),
    Call("get", "apps", "statefulsets", "scale"),
    Call("patch", "apps", "statefulsets", "scale"),
    Call("list", "", "pods"),
    Call("patch", "eventing.local", "workloads", "status"),
    Call("patch", "eventing.knative.dev", "brokers", "status"),
    Call("patch", "eventing.knative.dev", "triggers", "status"),
    # jobs per event (eventing/kube/jobs.py)
    Call("create", "batch", "jobs"),
    Call("list", "batch", "jobs"),
    Call("delete", "batch", "jobs"),
    Call("create", "", "secrets"),
)

#: What it must not do: change a workload other than through scale, create or delete
#: anything it loads, read Secrets or ConfigMaps, touch RBAC.
FORBIDDEN_CALLS: tuple[Call, ...] = (
    Call("patch", "apps", "deployments"),
    Call("list", "apps", "deployments"),
    Call("update", "apps", "deployments"),
    Call("delete", "apps", "deployments"),
    Call("create", "apps", "deployments"),
    Call("create", "", "pods"),
    Call("delete", "", "pods"),
    Call("get", "", "secrets"),
    Call("list", "", "secrets"),
    Call("get", "", "configmaps"),
    Call("create", "", "services"),
    Call("patch", "eventing.knative.dev", "triggers"),
    Call("get", "keda.sh", "triggerauthentications"),
    Call("update", "eventing.local", "workloads", "status"),
    Call("delete", "eventing.knative.dev", "brokers"),
    Call("create", "eventing.local", "workloads"),
    Call("delete", "eventing.local", "workloads"),
    Call("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    Call("escalate", "rbac.authorization.k8s.io", "clusterroles"),
    Call("impersonate", "", "serviceaccounts"),
    # jobs: nothing beyond create/list/delete; a Secret is never read, changed or
    # deleted by us; logs are read by `eventing jobs logs` with the operator's own
    # credentials, not by the data plane
    Call("patch", "batch", "jobs"),
    Call("update", "batch", "jobs"),
    Call("create", "batch", "cronjobs"),
    Call("delete", "", "secrets"),
    Call("update", "", "secrets"),
    Call("get", "", "pods", "log"),
)


def run_overlay(root: Path, overlay: str, components: Sequence[str] = ()) -> Path:
    """A kustomization over ``deploy/overlays/<overlay>`` (and ``components``) that
    installs it as this run: in NAMESPACE, with the cluster-scoped RBAC named ROLE
    (its binding's subject in NAMESPACE: kustomize's ``namespace`` leaves a
    ClusterRoleBinding's subjects alone), the namespace labelled with the run."""
    if not (root / "deploy").exists():
        (root / "deploy").symlink_to(DEPLOY)  # kustomize wants relative paths
    mine = root / "-".join((overlay, *components))
    mine.mkdir(exist_ok=True)
    label = "/metadata/labels/" + RUN_LABEL.replace("/", "~1")
    kustomization = {
        "resources": [f"../deploy/overlays/{overlay}"],
        "components": [f"../deploy/variants/{c}" for c in components],
        "namespace": NAMESPACE,
        "patches": [
            {"target": {"kind": "Namespace"},
             "patch": yaml.safe_dump([{"op": "add", "path": label, "value": RUN}])},
            {"target": {"kind": "ClusterRole"},
             "patch": yaml.safe_dump([{"op": "replace", "path": "/metadata/name", "value": ROLE}])},
            {"target": {"kind": "ClusterRoleBinding"},
             "patch": yaml.safe_dump([
                 {"op": "replace", "path": "/metadata/name", "value": ROLE},
                 {"op": "replace", "path": "/subjects/0/namespace", "value": NAMESPACE},
             ])},
        ],
    }  # fmt: skip
    (mine / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return mine


@pytest.fixture(scope="module")
def overlays(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's kustomizations go (:func:`run_overlay`)."""
    return tmp_path_factory.mktemp("deploy-run")


@pytest.fixture(scope="module")
def installed(k8s_cluster: Cluster, overlays: Path) -> Iterator[Cluster]:
    """Every overlay applied in turn (kafka last) into this run's namespace; the
    namespace and this run's ClusterRole(Binding) go afterwards, the shared CRDs stay
    (re-applying them is idempotent)."""
    _delete_stale_runs(k8s_cluster)
    k8s_cluster.kubectl("apply", "-k", str(DEPLOY / "knative-crds"))  # no Knative here
    try:
        for overlay in OVERLAYS:
            k8s_cluster.kubectl("apply", "-k", str(run_overlay(overlays, overlay)))
        yield k8s_cluster
    finally:
        _delete_run(k8s_cluster, RUN)


def _delete_run(cluster: Cluster, run: str) -> None:
    """A run's namespace (not waiting for its finalizers) and cluster-scoped RBAC."""
    cluster.kubectl("delete", "namespace", f"eventing-{run}", "--wait=false", "--ignore-not-found")
    role = f"eventing-dataplane-{run}"
    cluster.kubectl("delete", "clusterrolebinding", role, "--ignore-not-found")
    cluster.kubectl("delete", "clusterrole", role, "--ignore-not-found")


def _delete_stale_runs(cluster: Cluster) -> None:
    """What runs killed more than STALE_AFTER seconds ago left behind (a run takes
    minutes, so nothing of a run still going is touched)."""
    found = cluster.core.list_namespace(label_selector=RUN_LABEL, _request_timeout=10)
    for namespace in found.items:
        age = time.time() - namespace.metadata.creation_timestamp.timestamp()
        run = (namespace.metadata.labels or {}).get(RUN_LABEL, "")
        if age > STALE_AFTER and run and namespace.metadata.name == f"eventing-{run}":
            _delete_run(cluster, run)


def _allowed(cluster: Cluster, call: Call, namespace: str = "default") -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=ACCOUNT,
            groups=[*ACCOUNT_GROUPS, "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace,
                verb=call.verb,
                group=call.group,
                resource=call.resource,
                subresource=call.subresource or None,
            ),
        )
    )
    answer = cluster.authorization.create_subject_access_review(review, _request_timeout=10)
    return bool(answer.status.allowed)


def test_every_overlay_applies_and_the_dataplane_becomes_ready(installed: Cluster) -> None:
    for crd in ("workloads", "webhooksources", "mqttsources"):
        installed.extensions.read_custom_resource_definition(f"{crd}.eventing.local")
    wait_for(
        lambda: len(installed.ready_pods(NAMESPACE, DATAPLANE)) == 3,
        timeout=120,
        what="3 Ready data-plane pods of the kafka overlay",
    )
    deployment = installed.apps.read_namespaced_deployment("eventing-dataplane", NAMESPACE)
    spec = deployment.spec.template.spec
    assert spec.service_account_name == "eventing-dataplane"
    container = spec.containers[0]
    assert container.readiness_probe.http_get.path == "/readyz"
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.resources.requests
    assert container.resources.limits
    assert installed.core.read_namespaced_service("eventing-ingress", NAMESPACE).spec.type == (
        "ClusterIP"
    )
    policy: Any = client.PolicyV1Api(installed.api)
    pdb = policy.read_namespaced_pod_disruption_budget("eventing-dataplane", NAMESPACE)
    assert pdb.spec.max_unavailable == 1


def test_the_crds_store_our_kinds_and_knatives(installed: Cluster, k8s_namespace: str) -> None:
    for name in ("workloads.eventing.local", "brokers.eventing.knative.dev"):
        wait_for(partial(_established, installed, name), timeout=30, what=f"CRD {name}")
    # The quickstart (Broker, Triggers, Workload) is stored as written: strict field
    # validation on, so a field our CRDs lack would fail the apply.
    quickstart = ROOT / "examples" / "quickstart" / "broker.yaml"
    installed.kubectl("apply", "--validate=strict", "-n", k8s_namespace, "-f", str(quickstart))
    for plural, group in (
        ("brokers", "eventing.knative.dev"),
        ("triggers", "eventing.knative.dev"),
    ):
        listed = installed.custom.list_namespaced_custom_object(group, "v1", k8s_namespace, plural)
        assert listed["items"], plural
    workloads = installed.custom.list_namespaced_custom_object(
        "eventing.local", "v1alpha1", k8s_namespace, "workloads"
    )
    assert [w["metadata"]["name"] for w in workloads["items"]] == ["order-processor"]


def _established(cluster: Cluster, name: str) -> bool:
    crd = cluster.extensions.read_custom_resource_definition(name)
    conditions = crd.status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def test_applying_again_does_not_restart_the_dataplane(installed: Cluster, overlays: Path) -> None:
    def generation() -> int:
        deployment = installed.apps.read_namespaced_deployment("eventing-dataplane", NAMESPACE)
        return int(deployment.metadata.generation)

    before = generation()
    out = installed.kubectl("apply", "-k", str(run_overlay(overlays, "kafka")))
    assert "deployment.apps/eventing-dataplane unchanged" in out
    assert "serviceaccount/eventing-dataplane unchanged" in out
    assert f"clusterrole.rbac.authorization.k8s.io/{ROLE} unchanged" in out
    assert generation() == before


@pytest.mark.parametrize("call", DATAPLANE_CALLS, ids=str)
def test_the_service_account_may_make_every_dataplane_call(installed: Cluster, call: Call) -> None:
    assert _allowed(installed, call), f"{ACCOUNT} may not {call}"


@pytest.mark.parametrize("call", FORBIDDEN_CALLS, ids=str)
def test_the_service_account_may_not_do_more(installed: Cluster, call: Call) -> None:
    assert not _allowed(installed, call), f"{ACCOUNT} may {call}, which it does not need"


def _impersonating(cluster: Cluster) -> Any:
    """An API client that acts as the data plane's ServiceAccount."""
    api = client.ApiClient(cluster.api.configuration)
    api.set_default_header("Impersonate-User", ACCOUNT)
    return api


def _status(call: Any) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_impersonated_requests_scale_but_cannot_edit(
    installed: Cluster, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    installed.apps.create_namespaced_deployment(ns, deployment_manifest("target", 1))
    api = _impersonating(installed)
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)

    scale = apps.patch_namespaced_deployment_scale("target", ns, {"spec": {"replicas": 2}})
    assert scale.spec.replicas == 2
    assert apps.read_namespaced_deployment("target", ns).metadata.name == "target"
    wait_for(
        lambda: len(installed.ready_pods(ns, "app=target")) == 2,
        timeout=90,
        what="2 Ready pods after the ServiceAccount scaled target",
    )
    assert len(core.list_namespaced_pod(ns, label_selector="app=target").items) == 2

    denied = {
        "patch deployment spec": lambda: apps.patch_namespaced_deployment(
            "target", ns, {"spec": {"paused": True}}
        ),
        "delete deployment": lambda: apps.delete_namespaced_deployment("target", ns),
        "list secrets": lambda: core.list_namespaced_secret(ns),
        "create pod": lambda: core.create_namespaced_pod(
            ns,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="x"),
                spec=deployment_manifest("x", 1).spec.template.spec,
            ),
        ),
    }
    statuses = {name: _status(call) for name, call in denied.items()}
    assert statuses == dict.fromkeys(denied, 403)


@pytest.mark.parametrize(
    ("variant", "service_type"), [("nodeport", "NodePort"), ("loadbalancer", "LoadBalancer")]
)
def test_ingress_variants_as_documented(
    installed: Cluster, overlays: Path, variant: str, service_type: str
) -> None:
    """An overlay of one's own, as deploy/README.md shows it (the kafka overlay and a
    variant component; here into this run's namespace), renders and passes the API
    server's validation (server-side dry run: nothing is changed)."""
    mine = run_overlay(overlays, "kafka", [variant])
    rendered = installed.kubectl("kustomize", str(mine))
    (ingress,) = (
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "eventing-ingress"
    )
    assert ingress["spec"]["type"] == service_type
    if variant == "nodeport":
        assert ingress["spec"]["ports"][0]["nodePort"] == 30080
    (mine / "all.yaml").write_text(rendered, encoding="utf-8")
    out = installed.kubectl("apply", "--dry-run=server", "-f", str(mine / "all.yaml"))
    assert "service/eventing-ingress configured (server dry run)" in out


def test_deploy_readme_names_every_overlay() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for overlay in OVERLAYS:
        assert f"deploy/overlays/{overlay}" in readme
    for variant in Path(DEPLOY / "variants").iterdir():
        assert f"deploy/variants/{variant.name}" in readme


def _service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig holding a short-lived token of the data plane's ServiceAccount
    (TokenRequest), as the pod would have it mounted."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=1800)
    )
    token = cluster.core.create_namespaced_service_account_token(
        "eventing-dataplane", NAMESPACE, request, _request_timeout=10
    ).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text(encoding="utf-8"))
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "dataplane", "user": {"token": token}}],
        "contexts": [
            {"name": "dataplane", "context": {"cluster": admin["clusters"][0]["name"],
                                               "user": "dataplane"}}
        ],
        "current-context": "dataplane",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(kubeconfig), encoding="utf-8")
    path.chmod(0o600)
    return path


async def test_the_dataplane_runs_as_its_service_account(
    installed: Cluster, k8s_namespace: str, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """``eventing run --kubernetes`` (controller mode) with the ServiceAccount's token
    only: it loads its resources, writes their status, scales a Workload's Deployment
    through the scale subresource and delivers; every call it makes is allowed (a
    forbidden one would show in the Workload's Ready condition)."""
    ns = k8s_namespace
    await asyncio.to_thread(
        installed.apps.create_namespaced_deployment, ns, deployment_manifest("target", 0)
    )
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(
        f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default, namespace: {ns}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: orders, namespace: {ns}}}
spec:
  broker: default
  subscriber: {{uri: "{subscriber.url}/orders"}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: web, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: target}}
  url: "{subscriber.url}/web"
  scaling: {{minReplicas: 2, maxReplicas: 3}}
""",
        encoding="utf-8",
    )
    await asyncio.to_thread(installed.kubectl, "apply", "-n", ns, "-f", str(manifest))
    kubeconfig = _service_account_kubeconfig(installed, tmp_path / "dataplane.kubeconfig")
    platform = Platform(kubernetes=True, kubeconfig=str(kubeconfig), namespace=ns)
    settings = RuntimeSettings(
        port=0, admin_port=0, store=StoreSettings(data_dir=tmp_path / "data", platform=platform)
    )
    running = await start(None, settings)
    try:
        async with aiohttp.ClientSession() as http:
            status, body = await post(
                http, f"{running.ingress_url}/{ns}/default", ce_headers("sa-1", "order")
            )
            assert status == 202, body
        [event] = await subscriber.wait_count(1, "/orders")
        assert event.id == "sa-1"

        def ready(group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
            obj = installed.custom.get_namespaced_custom_object(group, version, ns, plural, name)
            conditions = (obj.get("status") or {}).get("conditions") or []
            found = next((c for c in conditions if c["type"] == "Ready"), None)
            return found if found and found["status"] == "True" else None

        for group, version, plural, name in (
            ("eventing.knative.dev", "v1", "brokers", "default"),
            ("eventing.knative.dev", "v1", "triggers", "orders"),
            ("eventing.local", "v1alpha1", "workloads", "web"),
        ):
            await asyncio.to_thread(
                wait_for,
                partial(ready, group, version, plural, name),
                timeout=60,
                what=f"{plural}/{name} Ready=True, its status written by the ServiceAccount",
            )
        await asyncio.to_thread(
            wait_for,
            lambda: len(installed.ready_pods(ns, "app=target")) == 2,
            timeout=90,
            what="Deployment target scaled to minReplicas 2 by the ServiceAccount",
        )
    finally:
        await stop(running, settings)
