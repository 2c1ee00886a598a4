"""Resources from the API server instead of a directory (``eventing run --kubernetes``
without a directory): every kind eventing loads is listed from the cluster and goes
through the very loader ``eventing validate`` uses, so an invalid resource gets the
same precise message as in a file.

Why through files: the loader reports errors by file and YAML line and does its
cross-checks on a whole set; writing each object to ``<Kind>.<namespace>.<name>.yaml``
in a private temporary directory keeps one loader and makes every error name the
object it is about.

What it does not do yet: watch (resources are read once, at start) or write status
back. Kinds in the core group (``v1`` ConfigMap, Secret) are not listed: reading every
Secret in the cluster is a privilege the data plane should not need.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from eventing.kube.api import KubeApi, KubeError, split_api_version
from eventing.resources.loader import KindRegistry, ResourceSet, load_resources
from eventing.resources.refs import Platform

#: Metadata fields kept from a live object; the rest is the server's bookkeeping.
KEPT_METADATA = ("name", "namespace", "labels", "annotations", "uid", "generation")
MAX_OBJECTS = 10_000
#: Answers worth retrying at start, and for how long (seconds).
TRANSIENT = frozenset({None, 429, 500, 502, 503, 504})
START_DEADLINE = 30.0


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


def load_from_cluster(
    api: KubeApi, registry: KindRegistry, platform: Platform, namespace: str | None = None
) -> ResourceSet:
    """Load what the cluster holds as :func:`load_resources` loads a directory; raises
    :class:`~eventing.resources.loader.LoadError` listing every invalid resource."""
    objects = _with_retries(lambda: fetch(api, served_kinds(registry), namespace))
    with tempfile.TemporaryDirectory(prefix="eventing-cluster-") as tmp:
        for doc in objects:
            meta = doc["metadata"]
            name = f"{doc['kind']}.{meta.get('namespace', '-')}.{meta.get('name', '-')}.yaml"
            (Path(tmp) / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        return load_resources(Path(tmp), registry, platform=platform)
