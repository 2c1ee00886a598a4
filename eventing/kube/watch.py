"""The API server feed of the reconciler (``eventing run --kubernetes``): list and watch
every kind eventing serves, and hand over a fresh :class:`Desired` when objects change.

How, per kind the cluster serves (a Knative kind without its CRD is skipped): list
(objects and the list's ``resourceVersion``), then watch from that version; each
watch call lasts at most :data:`WATCH_SECONDS` (the API server ends it) and the next
one resumes from the last version seen (bookmarks keep it fresh). A watch too old to
resume (410 Gone) lists again. Errors (unreachable, 5xx, 429) back off from 0.5 s to
30 s and keep the objects last seen, so an API server that goes away changes nothing.

The blocking client runs in a thread pool of its own (one thread per watched kind),
never on the event loop and never in the default pool the rest of the system uses;
every list has a deadline, and closing the feed closes every open watch at once.

Changes are applied once the watches have been quiet for ``debounce`` seconds and
every kind has been listed at least once (before that a kind not yet listed would
look deleted). Loading goes through :func:`eventing.kube.feed.load_objects`, the
loader ``validate`` runs: an invalid object is rejected with ``validate``'s message
(its status says so) and the reconciler keeps its last good version running.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eventing.errors import ConfigError
from eventing.kube.api import KubeApi, KubeError, WatchHandle
from eventing.kube.feed import (
    MAX_OBJECTS,
    ClusterResources,
    clean,
    load_objects,
    served_kinds,
)
from eventing.resources.desired import Desired, Identity, Rejection
from eventing.resources.loaded import OWNER_LABEL, LoadError, ResourceSet
from eventing.resources.loader import KindRegistry
from eventing.resources.refs import Platform

logger = logging.getLogger(__name__)

WATCH_SECONDS = 30
CALL_DEADLINE = 15.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
Kind = tuple[str, str, str]
"""(apiVersion, kind, plural)."""


class ClusterFeed:
    """Lists and watches the served kinds; calls ``apply`` with each new snapshot."""

    def __init__(
        self,
        connect: Callable[[int], KubeApi],
        registry: KindRegistry,
        platform: Platform,
        namespace: str | None,
        *,
        debounce: float = 0.3,
    ) -> None:
        self.connect = connect
        """Opens a connection with a pool of the given size (blocking)."""
        self.registry = registry
        self.platform = platform
        self.namespace = namespace
        self.debounce = debounce
        self.objects: dict[Kind, dict[str, dict[str, Any]]] = {}
        self.relists = 0
        self.last_error: str | None = None
        self._changed = asyncio.Event()
        self._handles: set[WatchHandle] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._kinds: list[Kind] = []

    async def run(self, apply: Callable[[Desired], Awaitable[None]]) -> None:
        kinds = len(served_kinds(self.registry))
        self._executor = ThreadPoolExecutor(max_workers=kinds + 1, thread_name_prefix="kube-watch")
        api: KubeApi | None = None
        try:
            api = await self._blocking(lambda: self.connect(kinds + 1))
            self._kinds = await self._discover(api)
            async with asyncio.TaskGroup() as group:
                for kind in self._kinds:
                    group.create_task(self._follow(api, kind), name=f"kube watch {kind[1]}")
                group.create_task(self._apply_loop(apply), name="kube apply")
        finally:
            for handle in list(self._handles):
                handle.close()
            if api is not None:  # after the calls already queued (bounded by their timeouts)
                self._executor.submit(api.close)
            self._executor.shutdown(wait=False)

    async def _blocking(self, call: Callable[[], Any], deadline: float = CALL_DEADLINE) -> Any:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(deadline):
            return await loop.run_in_executor(self._executor, call)

    async def _discover(self, api: KubeApi) -> list[Kind]:
        """The served kinds the cluster has (retried with backoff until it answers)."""
        delay = FIRST_BACKOFF
        while True:
            try:
                found: list[Kind] = []
                for api_version, kind in served_kinds(self.registry):
                    try:
                        resource = await self._blocking(
                            functools.partial(api.api_resource, api_version, kind)
                        )
                    except KubeError as exc:
                        if exc.status == 404:
                            continue
                        raise
                    found.append((api_version, kind, resource.plural))
                return found
            except (KubeError, TimeoutError) as exc:
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(MAX_BACKOFF, delay * 2)

    async def _follow(self, api: KubeApi, kind: Kind) -> None:
        """List, then watch from the list's version; list again on 410 Gone."""
        api_version, _, plural = kind
        version: str | None = None
        delay = FIRST_BACKOFF
        while True:
            try:
                if version is None:
                    items, version = await self._blocking(
                        lambda: api.list_with_version(api_version, plural, self.namespace)
                    )
                    if len(items) > MAX_OBJECTS:
                        raise KubeError(413, f"more than {MAX_OBJECTS} {plural}")
                    self.objects[kind] = {_key(i): clean(i, api_version, kind[1]) for i in items}
                    self._changed.set()
                version = await self._watch(api, kind, version)
                delay = FIRST_BACKOFF
                self.last_error = None
            except (KubeError, TimeoutError) as exc:
                if isinstance(exc, KubeError) and exc.status == 410:
                    self.relists += 1
                    version = None
                    continue
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(MAX_BACKOFF, delay * 2)

    async def _watch(self, api: KubeApi, kind: Kind, version: str) -> str:
        """One watch call (in a thread); every change lands on the loop as it comes."""
        api_version, _, plural = kind
        loop = asyncio.get_running_loop()
        handle = WatchHandle()
        self._handles.add(handle)

        def stream() -> str:
            last = version
            for event in api.watch_objects(
                api_version, plural, self.namespace, version, WATCH_SECONDS, handle
            ):
                obj = event.get("object") or {}
                last = str((obj.get("metadata") or {}).get("resourceVersion") or last)
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    loop.call_soon_threadsafe(self._update, kind, str(event["type"]), obj)
            return last

        try:
            assert self._executor is not None
            future = loop.run_in_executor(self._executor, stream)
            async with asyncio.timeout(WATCH_SECONDS + CALL_DEADLINE):
                result: str = await future
                return result
        finally:
            handle.close()  # a cancelled or timed-out watch ends its thread now
            self._handles.discard(handle)

    def _update(self, kind: Kind, kind_of_change: str, obj: dict[str, Any]) -> None:
        objects = self.objects.setdefault(kind, {})
        if kind_of_change == "DELETED":
            objects.pop(_key(obj), None)
        else:
            objects[_key(obj)] = clean(obj, kind[0], kind[1])
        self._changed.set()

    async def _apply_loop(self, apply: Callable[[Desired], Awaitable[None]]) -> None:
        while True:
            await self._changed.wait()
            while True:  # debounce: until the watches are quiet
                self._changed.clear()
                try:
                    async with asyncio.timeout(self.debounce):
                        await self._changed.wait()
                except TimeoutError:
                    break
            if any(kind not in self.objects for kind in self._kinds):
                continue  # not every kind listed yet: a missing one would look deleted
            docs = [doc for objects in self.objects.values() for doc in objects.values()]
            desired = await asyncio.to_thread(
                desired_from_objects, docs, self.registry, self.platform
            )
            await apply(desired)

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        if message != self.last_error:
            logger.warning("watching the API server: %s (retrying)", message)
        self.last_error = message


def desired_from_objects(
    docs: list[dict[str, Any]], registry: KindRegistry, platform: Platform
) -> Desired:
    """A snapshot from cleaned objects (blocking: a worker thread)."""
    try:
        loaded = load_objects(docs, registry, platform)
    except (LoadError, ConfigError) as exc:
        return Desired(ResourceSet(), error=str(exc))
    return Desired(loaded, origins=cluster_origins(loaded), rejected=rejections(loaded))


def cluster_origins(loaded: ClusterResources) -> dict[tuple[str, str], str]:
    """The object (``Kind namespace/name``) each resource came from; a derived or
    expanded one comes from the object it was made from."""
    units: dict[tuple[str, str], str] = {}
    by_label: dict[str, str] = {}
    for r in loaded.resources:
        if (found := loaded.units.get(id(r))) is not None:
            units[(r.kind, r.key)] = found
            by_label[f"{r.kind}/{r.name}"] = found
    for r in loaded.resources:
        if (r.kind, r.key) not in units:
            units[(r.kind, r.key)] = by_label.get(r.metadata.labels.get(OWNER_LABEL, ""), "")
    return units


def rejections(loaded: ClusterResources) -> list[Rejection]:
    return [
        Rejection(
            f"{r.kind} {r.namespace}/{r.name}",
            r.messages,
            Identity(r.api_version, r.kind, r.namespace, r.name, r.generation),
        )
        for r in loaded.rejected
    ]


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"
