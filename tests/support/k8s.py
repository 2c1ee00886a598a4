"""The test Kubernetes control plane of ``scripts/servers up kubernetes``, for tests.

Why a helper: tests that drive Deployments need a client for the *test* cluster only —
never whatever ``KUBECONFIG`` a developer has exported — so the kubeconfig comes from
``EVENTING_TEST_KUBECONFIG`` or the script's default state dir, and the cluster is
checked to be ours (kwok fake nodes) before a test touches it. Each test gets its own
namespace (``Cluster.namespace``), deleted afterwards, so helpers running at the same
time never see each other's objects. Waiting is always on a condition with a deadline.

The official client blocks: call it from plain (sync) tests, or through
``asyncio.to_thread`` from async ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG_ENV = "EVENTING_TEST_KUBECONFIG"
KUBECTL_ENV = "EVENTING_TEST_KUBECTL"
SERVERS_DIR_ENV = "EVENTING_SERVERS_DIR"
KWOK_NODE_LABEL = "type=kwok"

T = TypeVar("T")


def kubeconfig_path() -> Path:
    """``EVENTING_TEST_KUBECONFIG``, else ``$EVENTING_SERVERS_DIR`` (or ``.servers``)
    ``/kubernetes/admin.kubeconfig`` as written by ``scripts/servers up kubernetes``."""
    explicit = os.environ.get(KUBECONFIG_ENV)
    if explicit:
        return Path(explicit)
    state = Path(os.environ.get(SERVERS_DIR_ENV) or ROOT / ".servers")
    return state / "kubernetes" / "admin.kubeconfig"


def kubectl_path() -> str:
    """``EVENTING_TEST_KUBECTL``, else the kubectl ``scripts/servers`` built (linked
    beside the kubeconfig), else one on ``PATH``."""
    explicit = os.environ.get(KUBECTL_ENV)
    if explicit:
        return explicit
    built = kubeconfig_path().parent / "bin" / "kubectl"
    if built.is_file():
        return str(built)
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError("no kubectl: run scripts/servers up kubernetes (it builds one)")
    return found


def wait_for(
    check: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds
    with ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}: last {last!r}"
            )
        time.sleep(interval)


@dataclass(frozen=True)
class Cluster:
    """An admin client for the test cluster plus the typed API groups tests use."""

    kubeconfig: Path
    api: Any  # kubernetes.client.ApiClient

    @classmethod
    def connect(cls, kubeconfig: Path) -> Cluster:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        return cls(kubeconfig=kubeconfig, api=client.ApiClient(configuration))

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> Any:
        return client.BatchV1Api(self.api)

    @property
    def authorization(self) -> Any:
        return client.AuthorizationV1Api(self.api)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    @property
    def extensions(self) -> Any:
        return client.ApiextensionsV1Api(self.api)

    def kubectl(self, *args: str, timeout: float = 120.0) -> str:
        """Run kubectl against the test cluster (no shell); its stdout, or fail with
        its stderr."""
        command = [kubectl_path(), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(  # fixed argv, no shell
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def kwok_nodes(self) -> list[str]:
        nodes = self.core.list_node(label_selector=KWOK_NODE_LABEL, _request_timeout=10)
        return [str(node.metadata.name) for node in nodes.items]

    @contextmanager
    def namespace(self, prefix: str = "t") -> Iterator[str]:
        """A fresh namespace, deleted (without waiting for its finalizers) on exit."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels={"eventing-test": "1"})
            ),
            _request_timeout=10,
        )
        # Pods are only admitted once the namespace's `default` ServiceAccount exists.
        wait_for(
            lambda: _exists(lambda: self.core.read_namespaced_service_account("default", name)),
            timeout=30,
            what=f"ServiceAccount default in namespace {name}",
        )
        try:
            yield name
        finally:
            try:
                self.core.delete_namespace(name, _request_timeout=10)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def ready_pods(self, namespace: str, selector: str) -> list[Any]:
        """Pods matching ``selector`` that are bound to a node, Running and Ready."""
        pods = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=10
        )
        return [
            pod
            for pod in pods.items
            if pod.metadata.deletion_timestamp is None
            and pod.spec.node_name
            and pod.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        ]


def _exists(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def deployment_manifest(name: str, replicas: int, *, labels: dict[str, str] | None = None) -> Any:
    """A Deployment kwok can run: any image name will do, no container ever starts."""
    match = {"app": name, **(labels or {})}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=match),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=match),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=match),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="example.invalid/fake:1")],
                    termination_grace_period_seconds=0,
                ),
            ),
        ),
    )
