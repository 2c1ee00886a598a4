"""The directory feed of the reconciler (``eventing run DIR``): watch the manifests and
hand over a fresh :class:`Desired` whenever a file changed.

How: every ``interval`` seconds the names, sizes and modification times of the
manifest files are compared with the last look (no inotify: a poll of a few hundred
``stat`` calls costs nothing and works on every filesystem, network mounts too). A
change is applied once the directory has been quiet for ``debounce`` seconds, so an
editor's save (truncate, write, rename) or a ``cp -r`` is read once, whole.

Loading goes through the loader ``eventing validate`` runs. Unlike ``validate``, a
file with errors does not stop the rest: it is set aside with ``validate``'s messages
and the others load again without it, at most :data:`MAX_ROUNDS` times (a Trigger
whose Broker was in the broken file then fails in turn, with its own message). The
reconciler keeps running what a set-aside file held before (its last good version).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from eventing.resources.desired import Desired, Rejection
from eventing.resources.loaded import OWNER_LABEL, LoadError, ResourceSet
from eventing.resources.loader import KindRegistry, load_resources, manifest_files
from eventing.resources.refs import Platform

logger = logging.getLogger(__name__)

MAX_ROUNDS = 5
Stamp = dict[str, tuple[int, int]]


def stamp(directory: Path) -> Stamp:
    """Name -> (size, mtime in ns) of every manifest file (blocking: a worker thread)."""
    out: Stamp = {}
    try:
        files = manifest_files(directory)
    except LoadError:
        return out
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def load_desired(directory: Path, registry: KindRegistry, platform: Platform) -> Desired:
    """Load the directory, setting aside the files with errors (blocking)."""
    excluded: dict[Path, list[str]] = {}
    for _ in range(MAX_ROUNDS):
        try:
            loaded = load_resources(directory, registry, platform=platform, exclude=excluded)
        except LoadError as exc:
            culprits = {Path(e.file) for e in exc.errors}
            files = set(_files(directory))
            if not culprits <= files - excluded.keys():
                return Desired(ResourceSet(), error=str(exc))  # an error naming no file
            for error in exc.errors:
                excluded.setdefault(Path(error.file), []).append(str(error))
            continue
        return Desired(
            loaded,
            origins=origins(loaded),
            rejected=[Rejection(str(p), tuple(m)) for p, m in sorted(excluded.items())],
        )
    return Desired(ResourceSet(), error=f"manifests still invalid after {MAX_ROUNDS} rounds")


def _files(directory: Path) -> list[Path]:
    try:
        return manifest_files(directory)
    except LoadError:
        return []


def origins(loaded: ResourceSet) -> dict[tuple[str, str], str]:
    """The unit (file) each resource came from; an expanded resource (a flow's trigger)
    comes from the file of the resource it was expanded from."""
    by_label: dict[str, str] = {}
    out: dict[tuple[str, str], str] = {}
    for r in loaded.resources:
        origin = loaded.origins.get(id(r))
        if origin is not None:
            out[(r.kind, r.key)] = origin[0]
            by_label[f"{r.kind}/{r.name}"] = origin[0]
    for r in loaded.resources:
        if (r.kind, r.key) not in out:
            owner = r.metadata.labels.get(OWNER_LABEL, "")
            out[(r.kind, r.key)] = by_label.get(owner, "")
    return out


class DirectoryFeed:
    """Polls ``directory`` and calls ``apply`` with each new :class:`Desired`."""

    def __init__(
        self,
        directory: Path,
        registry: KindRegistry,
        platform: Platform,
        *,
        interval: float = 1.0,
        debounce: float = 0.3,
    ) -> None:
        self.directory = directory
        self.registry = registry
        self.platform = platform
        self.interval = max(0.05, min(interval, 60.0))
        self.debounce = max(0.0, min(debounce, 10.0))
        self.seen: Stamp | None = None
        self.loads = 0

    async def prime(self) -> None:
        """Remember the directory as the start loaded it (no reload for it)."""
        self.seen = await asyncio.to_thread(stamp, self.directory)

    async def run(self, apply: Callable[[Desired], Awaitable[None]]) -> None:
        if self.seen is None:
            await self.prime()
        while True:
            await asyncio.sleep(self.interval)
            now = await asyncio.to_thread(stamp, self.directory)
            if now == self.seen:
                continue
            while True:  # debounce: wait until the directory is quiet
                await asyncio.sleep(self.debounce)
                later = await asyncio.to_thread(stamp, self.directory)
                if later == now:
                    break
                now = later
            desired = await asyncio.to_thread(
                load_desired, self.directory, self.registry, self.platform
            )
            self.loads += 1
            await apply(desired)
            self.seen = now  # after the apply: a failed one is tried again
