"""The checks between resources, run once every document is valid on its own: a
Trigger's broker exists, every destination resolves (with the same
:func:`eventing.resources.resolve.resolve` the runtime uses), and values that must be
unique are (a webhook path served by two sources).

A reference to a document that failed its own validation is not reported again. With
``partial`` (the manifests are part of a larger set, as with ``kubectl apply`` of one
file), a reference to a resource that is not here is a warning that says what would
happen, not an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from eventing.resources.base import Destination, Resource
from eventing.resources.flowkinds import Subscription
from eventing.resources.loaded import KindRegistry, ResourceError, ResourceSet, is_internal, label
from eventing.resources.refs import Platform, RefError, Role, resolve, split_errors
from eventing.resources.split import Subscriber
from eventing.resources.trigger import Trigger

_MISSING_CONSEQUENCE = (
    "(--partial: `eventing run` refuses to start until it exists; on Kubernetes the "
    "resource stays not ready until it is created)"
)


class _Report:
    """Collects errors and warnings for one resource at a time."""

    def __init__(self, loaded: ResourceSet, partial: bool) -> None:
        self.loaded = loaded
        self.partial = partial
        self.errors: list[ResourceError] = []
        self.warnings: list[ResourceError] = []

    def __call__(
        self, r: Resource, path: str, value: object, message: str, *, missing: bool
    ) -> None:
        file, line = self.loaded.origins.get(id(r), ("-", None))
        field_line = self.loaded.field_lines.get(id(r))
        line = (field_line(path) if field_line is not None else None) or line
        if missing and self.partial:
            message = f"{message} {_MISSING_CONSEQUENCE}"
            self.warnings.append(ResourceError(file, line, label(r), path, value, message))
        else:
            self.errors.append(ResourceError(file, line, label(r), path, value, message))


def cross_checks(
    loaded: ResourceSet, registry: KindRegistry, *, platform: Platform, partial: bool
) -> tuple[list[ResourceError], list[ResourceError]]:
    """(errors, warnings) over the references between ``loaded``'s resources."""
    report = _Report(loaded, partial)
    named = loaded.index()
    brokers = {key for kind, key in named if kind == "Broker"}
    for r in loaded.resources:
        if is_internal(r):
            continue
        if isinstance(r, Trigger):
            key = r.broker_key
            if key not in brokers and ("Broker", key) not in loaded.invalid:
                ns, name = key.split("/", 1)
                path = "spec.brokerRef" if r.spec.broker_ref is not None else "spec.broker"
                report(r, path, name, f"no Broker {name!r} in namespace {ns!r}", missing=True)
        if isinstance(r, Subscription):
            channel = Destination(ref=r.spec.channel)
            try:
                resolve(
                    channel, r.namespace, "subscriber", platform, lambda k, n: named.get((k, n))
                )
            except RefError as exc:
                report(r, "spec.channel", exc.value, str(exc), missing=exc.missing)
        for path, role, dest in destinations(r):
            if isinstance(dest, Subscriber) and dest.split is not None:
                _split(report, r, path, dest, platform, named, loaded.invalid)
                continue
            ref = dest.ref
            if ref is not None and (ref.kind, f"{ref.namespace or r.namespace}/{ref.name}") in (
                loaded.invalid
            ):
                continue
            try:
                resolve(dest, r.namespace, role, platform, lambda k, n: named.get((k, n)))
            except RefError as exc:
                report(r, f"{path}.{exc.field}", exc.value, str(exc), missing=exc.missing)
    report.errors.extend(_claims(loaded, registry))
    return report.errors, report.warnings


def _split(
    report: _Report,
    r: Resource,
    path: str,
    subscriber: Subscriber,
    platform: Platform,
    named: dict[tuple[str, str], Resource],
    invalid: set[tuple[str, str]],
) -> None:
    """A split subscriber: every target's error, through the function ``run`` uses."""
    _, errors = split_errors(subscriber, r.namespace, platform, lambda k, n: named.get((k, n)))
    targets = subscriber.targets
    for index, exc in errors:
        ref = targets[index].ref
        if ref is not None and (ref.kind, f"{ref.namespace or r.namespace}/{ref.name}") in invalid:
            continue
        report(r, f"{path}.{exc.field}", exc.value, str(exc), missing=exc.missing)


def destinations(resource: Resource) -> Iterator[tuple[str, Role, Destination]]:
    """Every :class:`Destination` in ``resource``'s spec, with its field path (YAML
    names) and role: ``spec.subscriber``, ``spec.steps[1]`` (a subscriber),
    ``spec.reply``, ``spec.delivery.deadLetterSink``, ``spec.sink``."""
    spec = getattr(resource, "spec", None)
    if isinstance(spec, BaseModel):
        yield from _walk(spec, "spec", "subscriber")


_ROLES: dict[str, Role] = {
    "sink": "sink",
    "reply": "reply",
    "deadLetterSink": "deadLetterSink",
    "subscriber": "subscriber",
    "filter": "subscriber",
}


def _walk(value: Any, path: str, role: Role) -> Iterator[tuple[str, Role, Destination]]:
    if isinstance(value, Destination):
        yield path, role, value
        if isinstance(value, Subscriber) and value.split is not None:
            return  # its targets are checked together (duplicates): see _split
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            child = getattr(value, name)
            if child is not None:
                alias = info.alias or name
                yield from _walk(child, f"{path}.{alias}", _ROLES.get(alias, role))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", role)


def _claims(loaded: ResourceSet, registry: KindRegistry) -> list[ResourceError]:
    errors: list[ResourceError] = []
    owners: dict[tuple[str, str], Resource] = {}
    for r in loaded.resources:
        for claim in registry.claims:
            for what, path, value in claim(r):
                first = owners.setdefault((what, value), r)
                if first is r:
                    continue
                file, line = loaded.origins.get(id(r), ("-", None))
                where = loaded.origins.get(id(first), ("-", None))[0]
                errors.append(
                    ResourceError(
                        file,
                        line,
                        label(r),
                        path,
                        value,
                        f"{what} {value!r} is already served by {label(first)} ({where}); "
                        "each must be unique",
                    )
                )
    return errors
