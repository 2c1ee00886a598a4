"""What a feed hands the reconciler: the resources that should run, and the units
(a manifest file, or one object of the API server) that did not load, with
``eventing validate``'s messages.

Why units: the reconciler keeps running the last good version of whatever a rejected
unit held (a file saved half-edited must not delete the Triggers it defines), so it
must know which unit each resource came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventing.resources.base import Resource
from eventing.resources.loaded import ResourceSet

_VOLATILE = {"uid", "generation", "resource_version", "creation_timestamp"}


@dataclass(frozen=True)
class Identity:
    """An object of the API server (for its status condition)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    generation: int | None = None


@dataclass(frozen=True)
class Rejection:
    """A unit that did not load, and why, in ``validate``'s words."""

    unit: str
    messages: tuple[str, ...]
    identity: Identity | None = None


@dataclass
class Desired:
    """One snapshot of a feed."""

    resources: ResourceSet
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    """(kind, namespace/name) -> the unit it came from."""
    rejected: list[Rejection] = field(default_factory=list)
    error: str | None = None
    """Set when nothing could be loaded (the directory is gone): nothing changes."""

    def rejected_units(self) -> set[str]:
        return {r.unit for r in self.rejected}


def fingerprint(resource: Resource, *, without: Iterable[str] = ()) -> Any:
    """What decides whether a resource changed (not the server's bookkeeping)."""
    dump = resource.model_dump(mode="json", exclude={"status"})
    for key in _VOLATILE:
        dump["metadata"].pop(key, None)
    for key in without:
        dump.get("spec", {}).pop(key, None)
    return dump
