"""What loading a directory of manifests produces: the loaded resources, the errors
and warnings (each naming file, line, resource, field path and value), and the kind
registry the composition root fills.

Separate from :mod:`eventing.resources.loader` so the modules that work on a loaded
set (reference checks, flow expansion) need not import the YAML reading.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventing.resources.base import Resource

#: An extra check run on a valid resource: returns (field path, bad value, message) tuples.
Check = Callable[[Resource], Iterable[tuple[str, object, str]]]
#: A value a resource holds that no other resource may hold: returns (what, field path,
#: value) tuples, e.g. ("webhook path", "spec.path", "/hooks/a").
Claim = Callable[[Resource], Iterable[tuple[str, str, str]]]
#: ``derive(resource, lookup)``: the resource it stands for; raises ValueError (with
#: optional ``field`` and ``value`` attributes) when it cannot be derived.
Derive = Callable[[Resource, Callable[[str, str], Resource | None]], Resource]

#: Label on resources made by expansion (flows, a source's non-broker sink): the
#: ``Kind/name`` of the resource they came from. Not checked again, not counted.
OWNER_LABEL = "eventing.local/expanded-from"


def is_internal(resource: Resource) -> bool:
    return OWNER_LABEL in resource.metadata.labels


@dataclass(frozen=True)
class ResourceError:
    file: str
    line: int | None
    resource: str
    path: str
    value: object
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        value = _show(self.value)
        field_part = f" {self.path}" if self.path else ""
        value_part = f" = {value}" if value is not None else ""
        return f"{where}: {self.resource}{field_part}{value_part}: {self.message}"


class LoadError(Exception):
    """Raised by :func:`load_resources` with every :class:`ResourceError` found."""

    def __init__(self, errors: Sequence[ResourceError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class KindRegistry:
    """Which model validates which ``(apiVersion, kind)``, plus per-kind extra checks."""

    models: dict[tuple[str, str], type[Resource]] = field(default_factory=dict)
    checks: dict[str, list[Check]] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    """Values that must be unique across resources (a webhook path)."""
    derivations: dict[str, Derive] = field(default_factory=dict)
    """Kinds that stand for another resource (a KEDA ScaledObject for a Workload): the
    derived resource joins the set, so validate and run both see it."""

    def register(self, model: type[Resource], *, check: Check | None = None) -> None:
        for api_version in model.API_VERSIONS:
            self.models[(api_version, model.KIND)] = model
        if check is not None:
            self.checks.setdefault(model.KIND, []).append(check)

    def add_claim(self, claim: Claim) -> None:
        self.claims.append(claim)

    def describe(self) -> str:
        return ", ".join(sorted(f"{k} ({a})" for a, k in self.models))


@dataclass
class ResourceSet:
    """Everything loaded from a directory, by kind, in file order."""

    resources: list[Resource] = field(default_factory=list)
    origins: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    """Where each resource was defined: id(resource) -> (file, line)."""
    field_lines: dict[int, Callable[[str], int | None]] = field(default_factory=dict)
    """id(resource) -> the line of a field path in its file (None if absent), so the
    checks between resources point at the field, not only at the document."""
    invalid: set[tuple[str, str]] = field(default_factory=set)
    """(kind, namespace/name) of documents that failed validation."""
    warnings: list[ResourceError] = field(default_factory=list)
    """What loads but is ignored or incomplete (printed by ``validate`` and ``run``)."""

    def index(self) -> dict[tuple[str, str], Resource]:
        """``(kind, namespace/name)`` -> resource, for
        :func:`eventing.resources.refs.resolve`'s lookup."""
        return {(r.kind, r.key): r for r in self.resources}

    def of(self, model: type[Resource]) -> list[Any]:
        return [r for r in self.resources if isinstance(r, model)]

    def kinds(self) -> dict[str, int]:
        """Resources per kind, as written (internal ones from expansion not counted)."""
        counts: dict[str, int] = {}
        for r in self.resources:
            if not is_internal(r):
                counts[r.kind] = counts.get(r.kind, 0) + 1
        return counts


def label(resource: Resource) -> str:
    return f"{resource.kind}/{resource.name}"


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()  # keyword arguments need Python 3.12
    short.maxlevel, short.maxdict, short.maxlist = 3, 6, 6
    short.maxstring, short.maxother = 60, 60
    return short


_REPR = _short_repr()


def show_value(value: object) -> str:
    """A short, bounded ``repr`` (never walks a whole large value)."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _show(value: object) -> str | None:
    return None if value is None else show_value(value)
