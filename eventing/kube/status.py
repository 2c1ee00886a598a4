"""Status written back to the API server (controller mode): each resource eventing
loaded from the cluster gets a ``status`` with a Knative-style ``Ready`` condition
(``status``, ``reason``, ``message``, ``lastTransitionTime``) and
``observedGeneration``, plus what its kind shows (a Broker's address, a Workload's
replicas), so ``kubectl get`` and ``kubectl describe`` tell what eventing made of it.

How: every :data:`INTERVAL` seconds the writer computes each object's status from the
running system (through the callables it was given) and sends a merge patch to the
``status`` subresource only when it changed; every call runs in a worker thread with a
deadline. A failed patch is logged once per message and retried on the next round:
status is best effort and never holds up events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventing.kube.api import KubeApi, KubeError

logger = logging.getLogger(__name__)

INTERVAL = 2.0
CALL_DEADLINE = 15.0
MAX_MESSAGE = 500


@dataclass(frozen=True)
class Health:
    """What one object's status says: ready or not, why, and kind-specific fields."""

    ready: bool
    reason: str
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tracked:
    api_version: str
    kind: str
    namespace: str
    name: str
    generation: int | None
    health: Callable[[], Health]
    plural: str | None = None
    last_body: dict[str, Any] | None = None
    last_ready: bool | None = None
    since: str = ""
    error: str | None = None


class StatusWriter:
    def __init__(self, connect: Callable[[], KubeApi], items: list[Tracked]) -> None:
        self._connect = connect
        self._api: KubeApi | None = None
        self.items = items
        self.patches = 0

    async def run(self) -> None:
        try:
            while True:
                await self.write_once()
                await asyncio.sleep(INTERVAL)
        finally:
            if self._api is not None:
                await asyncio.to_thread(self._api.close)
                self._api = None

    async def write_once(self) -> None:
        for item in self.items:
            try:
                await self._write(item)
            except KubeError as exc:
                if str(exc) != item.error:
                    logger.warning("status of %s %s/%s: %s", item.kind, item.namespace,
                                   item.name, exc)  # fmt: skip
                item.error = str(exc)
            else:
                item.error = None

    async def _write(self, item: Tracked) -> None:
        health = item.health()
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if health.ready != item.last_ready:
            item.last_ready, item.since = health.ready, now
        condition = {
            "type": "Ready",
            "status": "True" if health.ready else "False",
            "reason": health.reason,
            "message": health.message[:MAX_MESSAGE],
            "lastTransitionTime": item.since,
        }
        body: dict[str, Any] = {"conditions": [condition], **health.extra}
        if item.generation is not None:
            body["observedGeneration"] = item.generation
        if body == item.last_body:
            return
        if item.plural is None:
            resource = await self._call(lambda api: api.api_resource(item.api_version, item.kind))
            item.plural = resource.plural
        plural = item.plural
        await self._call(
            lambda api: api.patch_status(
                item.api_version, plural, item.namespace, item.name, {"status": body}
            )
        )
        item.last_body = body
        self.patches += 1

    async def _call(self, call: Callable[[KubeApi], Any]) -> Any:
        if self._api is None:
            self._api = await asyncio.to_thread(self._connect)
        api = self._api
        try:
            async with asyncio.timeout(CALL_DEADLINE):
                return await asyncio.to_thread(call, api)
        except TimeoutError:
            raise KubeError(None, f"no answer within {CALL_DEADLINE:.0f}s") from None
