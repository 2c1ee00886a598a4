"""Resources from the API server instead of a directory (``eventing run --kubernetes``
without a directory): every kind eventing loads is listed from the cluster and goes
through the very loader ``eventing validate`` uses, so an invalid resource gets the
same precise message as in a file.

Why through files: the loader reports errors by file and YAML line and does its
cross-checks on a whole set; writing each object to ``<Kind>.<namespace>.<name>.yaml``
in a private temporary directory keeps one loader and makes every error name the
object it is about.

An invalid object does not stop the rest (as it would in a directory): it is set aside
with ``validate``'s messages, which go on its status as a ``Ready=False`` condition
(:mod:`eventing.app.kube_status`). Read once here, at start; :mod:`eventing.kube.watch`
keeps them current while running. Kinds in the core group (``v1`` ConfigMap, Secret)
are not listed: reading every Secret in the cluster is a privilege the data plane
should not need.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eventing.errors import ConfigError
from eventing.kube.api import KubeApi, KubeError, split_api_version
from eventing.resources.loaded import LoadError, ResourceError
from eventing.resources.loader import KindRegistry, ResourceSet, load_resources
from eventing.resources.refs import Platform

#: Metadata fields kept from a live object; the rest is the server's bookkeeping.
KEPT_METADATA = ("name", "namespace", "labels", "annotations", "uid", "generation")
MAX_OBJECTS = 10_000
#: Answers worth retrying at start, and for how long (seconds).
TRANSIENT = frozenset({None, 429, 500, 502, 503, 504})
START_DEADLINE = 30.0
MAX_ROUNDS = 5


def served_kinds(registry: KindRegistry) -> list[tuple[str, str]]:
    return sorted((a, k) for a, k in registry.models if split_api_version(a)[0])


def fetch(api: KubeApi, kinds: Iterable[tuple[str, str]], namespace: str | None) -> list[Any]:
    """Every object of ``kinds`` the cluster serves (blocking: run it in a thread). A kind
    the cluster does not serve (Knative not installed) is skipped."""
    objects: list[Any] = []
    for api_version, kind in kinds:
        try:
            resource = api.api_resource(api_version, kind)
        except KubeError as exc:
            if exc.status == 404:
                continue
            raise
        for item in api.list_objects(api_version, resource.plural, namespace):
            objects.append(clean(item, api_version, kind))
            if len(objects) > MAX_OBJECTS:
                raise KubeError(413, f"more than {MAX_OBJECTS} resources to load")
    return objects


def clean(item: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    meta = item.get("metadata") or {}
    doc: dict[str, Any] = {
        "apiVersion": item.get("apiVersion", api_version),
        "kind": item.get("kind", kind),
        "metadata": {k: meta[k] for k in KEPT_METADATA if k in meta},
    }
    for key, value in item.items():
        if key not in ("apiVersion", "kind", "metadata", "status"):
            doc[key] = value
    return doc


def _with_retries(call: Callable[[], list[Any]], deadline: float = START_DEADLINE) -> list[Any]:
    """Retry what a starting or busy API server answers (429 "storage is initializing"
    right after a CRD is created, 503, unreachable) with backoff, up to ``deadline``."""
    give_up = time.monotonic() + deadline
    delay = 0.2
    while True:
        try:
            return call()
        except KubeError as exc:
            if exc.status not in TRANSIENT or time.monotonic() + delay > give_up:
                raise
        time.sleep(delay)  # a worker thread: the event loop is not blocked
        delay = min(5.0, delay * 2)


@dataclass(frozen=True)
class Rejected:
    """An object of the cluster that did not load, and why (``validate``'s words)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    generation: int | None
    messages: tuple[str, ...]


@dataclass
class ClusterResources(ResourceSet):
    """What loaded from the cluster, plus what was rejected (it gets a condition)."""

    rejected: list[Rejected] = field(default_factory=list)
    units: dict[int, str] = field(default_factory=dict)
    """id(resource) -> the object it came from (see :func:`unit`)."""


def load_from_cluster(
    api: KubeApi, registry: KindRegistry, platform: Platform, namespace: str | None = None
) -> ClusterResources:
    """Load what the cluster holds as :func:`load_resources` loads a directory (see
    :func:`load_objects`)."""
    objects = _with_retries(lambda: fetch(api, served_kinds(registry), namespace))
    return load_objects(objects, registry, platform)


def load_objects(
    objects: list[dict[str, Any]], registry: KindRegistry, platform: Platform
) -> ClusterResources:
    """Load cleaned objects (:func:`clean`). Unlike a directory, one invalid object does
    not stop the rest: it is set aside with ``validate``'s messages and the load is
    repeated without it (a Trigger whose Broker was set aside then fails in turn, with
    its own message), at most :data:`MAX_ROUNDS` times. ``units`` of the result names
    the object each resource came from (``Kind namespace/name``)."""
    by_file = {_file_name(doc): doc for doc in objects}
    rejected: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="eventing-cluster-") as tmp:
        for name, doc in by_file.items():
            (Path(tmp) / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        for _ in range(MAX_ROUNDS):
            try:
                loaded = load_resources(Path(tmp), registry, platform=platform)
            except LoadError as exc:
                culprits = {Path(e.file).name for e in exc.errors}
                if not culprits <= by_file.keys() - rejected.keys():
                    raise  # an error that names no object: nothing to set aside
                for error in exc.errors:
                    rejected.setdefault(Path(error.file).name, []).append(_reason(error))
                for name in culprits:
                    (Path(tmp) / name).unlink()
                continue
            result = ClusterResources(**vars(loaded))
            result.rejected = [_rejected(by_file[n], m) for n, m in sorted(rejected.items())]
            result.units = {
                id(r): unit(by_file[Path(file).name])
                for r in loaded.resources
                if (file := loaded.origins.get(id(r), ("", None))[0]) and Path(file).name in by_file
            }
            return result
    raise ConfigError(f"resources from the cluster still invalid after {MAX_ROUNDS} rounds")


def unit(doc: dict[str, Any]) -> str:
    """How the reconciler names one object of the cluster."""
    meta = doc["metadata"]
    return f"{doc['kind']} {meta.get('namespace') or 'default'}/{meta.get('name') or ''}"


def _file_name(doc: dict[str, Any]) -> str:
    meta = doc["metadata"]
    return f"{doc['kind']}.{meta.get('namespace', '-')}.{meta.get('name', '-')}.yaml"


def _reason(error: ResourceError) -> str:
    """``validate``'s message without the (temporary) file name."""
    return str(error).split(": ", 1)[1] if ": " in str(error) else str(error)


def _rejected(doc: dict[str, Any], messages: list[str]) -> Rejected:
    meta = doc["metadata"]
    return Rejected(
        str(doc["apiVersion"]),
        str(doc["kind"]),
        str(meta.get("namespace") or "default"),
        str(meta.get("name") or ""),
        meta.get("generation") if isinstance(meta.get("generation"), int) else None,
        tuple(messages),
    )
