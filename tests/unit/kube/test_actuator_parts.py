"""The pure parts of the Kubernetes runtime: counting replicas by state from pods, the
Workload fields that select it, and the Service router's admission."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from eventing.kube.actuator import count_pods
from eventing.kube.router import ServiceRouter
from eventing.resources.workload import WorkloadSpec


def pod(ready: bool = False, deleting: bool = False, phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


@pytest.mark.parametrize(
    ("pods", "desired", "expected"),
    [
        ([], 0, (0, 0, 0)),
        ([], 3, (3, 0, 0)),  # asked for, not yet created: coming capacity
        ([pod(True), pod(), pod()], 3, (2, 1, 0)),
        ([pod(True), pod(True, deleting=True)], 1, (0, 1, 1)),  # terminating: draining
        ([pod(True), pod(phase="Succeeded")], 1, (0, 1, 0)),
        ([pod(True), pod(True)], 0, (0, 2, 0)),  # above desired until deleted
    ],
)
def test_count_pods(pods: list[dict[str, Any]], desired: int, expected: tuple[int, ...]) -> None:
    counts = count_pods(pods, desired)
    assert (counts["starting"], counts["ready"], counts["draining"]) == expected


def test_workload_is_either_local_or_kubernetes() -> None:
    with pytest.raises(ValidationError, match="give one of 'command'"):
        WorkloadSpec.model_validate({})
    with pytest.raises(ValidationError, match="give one of 'command'"):
        WorkloadSpec.model_validate({"command": ["x"], "scaleTargetRef": {"name": "web"}})
    with pytest.raises(ValidationError, match="go with 'scaleTargetRef'"):
        WorkloadSpec.model_validate({"command": ["x"], "url": "http://a/"})
    with pytest.raises(ValidationError, match="pod template"):
        WorkloadSpec.model_validate(
            {"scaleTargetRef": {"name": "web"}, "env": [{"name": "A", "value": "1"}]}
        )
    spec = WorkloadSpec.model_validate(
        {"scaleTargetRef": {"name": "web"}, "service": {"name": "web", "port": 8080}, "path": "/e"}
    )
    assert spec.delivery_url("shop") == "http://web.shop.svc.cluster.local:8080/e"


async def test_router_admits_concurrency_per_ready_replica() -> None:
    ready = 0
    router = ServiceRouter("http://svc/", concurrency=2, ready=lambda: ready)
    waiting = asyncio.create_task(router.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing ready: the event waits here, not in a retry
    ready = 1
    await router.changed()
    first = await waiting
    second = await router.acquire()
    third = asyncio.create_task(router.acquire())
    await asyncio.sleep(0)
    assert not third.done()  # 2 in flight = 1 ready x concurrency 2
    await router.release(first)
    assert (await third).url == "http://svc/"
    assert router.in_flight == 2
    await router.release(second)
