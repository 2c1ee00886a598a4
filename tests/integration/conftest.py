"""Session fixtures for the real RabbitMQ, Kafka, Mosquitto and Kubernetes control plane
of ``scripts/servers``.

Each fixture reads its ``EVENTING_TEST_*`` variable (default: the script's loopback
ports) and checks that the server accepts connections. An unreachable server FAILS
the test with the command that starts it: integration tests are skipped only when
``EVENTING_SKIP_INTEGRATION=1`` is set explicitly, so a CI run cannot pass by quietly
testing nothing. Every test here is marked ``integration``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.integration.support import (
    AMQP_URL,
    KAFKA_BOOTSTRAP,
    MQTT_URL,
    RABBITMQ_MGMT_URL,
    SKIP_ENV,
)
from tests.support.k8s import KUBECONFIG_ENV, Cluster, kubeconfig_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    skip = os.environ.get(SKIP_ENV) == "1"
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.integration)
            if skip:
                item.add_marker(pytest.mark.skip(reason=f"{SKIP_ENV}=1"))


def _require(name: str, url: str, default_port: int, variable: str) -> str:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        pytest.fail(
            f"{name} is not reachable at {host}:{port} ({exc}); run scripts/servers up "
            f"(or set {variable}, or {SKIP_ENV}=1 to skip integration tests)",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return _require("RabbitMQ", AMQP_URL, 5672, "EVENTING_TEST_AMQP_URL")


@pytest.fixture(scope="session")
def rabbitmq_mgmt_url(amqp_url: str) -> str:
    return _require(
        "RabbitMQ management", RABBITMQ_MGMT_URL, 15672, "EVENTING_TEST_RABBITMQ_MGMT_URL"
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _require("Kafka", KAFKA_BOOTSTRAP, 9092, "EVENTING_TEST_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    return _require("Mosquitto", MQTT_URL, 1883, "EVENTING_TEST_MQTT_URL")


@pytest.fixture(scope="session")
def k8s_cluster() -> Cluster:
    """An admin client for the test control plane (``scripts/servers up kubernetes``),
    checked to be ours: it has kwok fake nodes."""
    path = kubeconfig_path()
    hint = (
        f"run scripts/servers up kubernetes (or set {KUBECONFIG_ENV}, or {SKIP_ENV}=1 to "
        "skip integration tests)"
    )
    if not path.is_file():
        pytest.fail(f"no test cluster kubeconfig at {path}; {hint}", pytrace=False)
    cluster = Cluster.connect(path)
    try:
        nodes = cluster.kwok_nodes()
    except Exception as exc:  # any failure here means "not reachable"
        pytest.fail(f"the test cluster at {path} is not reachable ({exc}); {hint}", pytrace=False)
    if not nodes:
        pytest.fail(f"the cluster at {path} has no kwok nodes: not the test cluster", pytrace=False)
    return cluster


@pytest.fixture
def k8s_namespace(k8s_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace on the test cluster, deleted after the test."""
    with k8s_cluster.namespace() as name:
        yield name
