"""Load a directory of YAML manifests into validated resources, reporting every error.

Why collect instead of stopping at the first error: ``eventing validate`` is run by
people fixing a directory of manifests, and a list of all problems, each with file,
line, resource, field path, bad value and what is allowed, saves them a loop per error.

Kinds come from a :class:`KindRegistry` filled at the composition root, so the core
loads source kinds it does not import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from eventing.resources.base import Resource
from eventing.resources.refs import Platform, RefError, Role, resolve

#: An extra check run on a valid resource: returns (field path, bad value, message) tuples.
Check = Callable[[Resource], Iterable[tuple[str, object, str]]]
#: ``derive(resource, lookup)``: the resource it stands for; raises ValueError (with
#: optional ``field`` and ``value`` attributes) when it cannot be derived.
Derive = Callable[[Resource, Callable[[str, str], Resource | None]], Resource]

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DOCUMENTS = 10_000


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
    derivations: dict[str, Derive] = field(default_factory=dict)
    """Kinds that stand for another resource (a KEDA ScaledObject for a Workload): the
    derived resource joins the set, so validate and run both see it."""

    def register(self, model: type[Resource], *, check: Check | None = None) -> None:
        for api_version in model.API_VERSIONS:
            self.models[(api_version, model.KIND)] = model
        if check is not None:
            self.checks.setdefault(model.KIND, []).append(check)

    def add_check(self, kind: str, check: Check) -> None:
        self.checks.setdefault(kind, []).append(check)

    def describe(self) -> str:
        return ", ".join(sorted(f"{k} ({a})" for a, k in self.models))


@dataclass
class ResourceSet:
    """Everything loaded from a directory, by kind, in file order."""

    resources: list[Resource] = field(default_factory=list)
    origins: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    """Where each resource was defined: id(resource) -> (file, line)."""
    invalid: set[tuple[str, str]] = field(default_factory=set)
    """(kind, namespace/name) of documents that failed validation."""

    def of(self, model: type[Resource]) -> list[Any]:
        return [r for r in self.resources if isinstance(r, model)]

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.resources:
            counts[r.kind] = counts.get(r.kind, 0) + 1
        return counts


def manifest_files(directory: Path) -> list[Path]:
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise LoadError(
            [ResourceError(str(directory), None, "-", "", None, "no such file or directory")]
        )
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_resources(
    directory: Path,
    registry: KindRegistry,
    *,
    local: bool = True,
    platform: Platform | None = None,
) -> ResourceSet:
    """Load and validate every manifest under ``directory``; raise :class:`LoadError`
    listing all problems if there is any. References are checked with
    :func:`eventing.resources.refs.resolve`, exactly as ``run`` resolves them, for
    ``platform`` (default: one machine when ``local``, else Kubernetes, where refs to
    Services resolve to their cluster URL)."""
    platform = platform or Platform(kubernetes=not local)
    errors: list[ResourceError] = []
    loaded = ResourceSet()
    seen: dict[tuple[str, str], str] = {}
    for path in manifest_files(directory):
        for resource, err, line, ident in _load_file(path, registry):
            errors.extend(err)
            if resource is None:
                if ident is not None:
                    loaded.invalid.add(ident)
                continue
            loaded.origins[id(resource)] = (str(path), line)
            key = (resource.kind, resource.key)
            if key in seen:
                errors.append(
                    ResourceError(
                        str(path),
                        None,
                        _label(resource),
                        "metadata.name",
                        resource.name,
                        f"duplicate {resource.kind}; first in {seen[key]}",
                    )
                )
                continue
            seen[key] = str(path)
            loaded.resources.append(resource)
    errors.extend(_derive(loaded, registry))
    errors.extend(_cross_checks(loaded, platform))
    if errors:
        raise LoadError(errors)
    return loaded


Loaded = tuple[Resource | None, list[ResourceError], int | None, tuple[str, str] | None]


def _load_file(path: Path, registry: KindRegistry) -> Iterable[Loaded]:
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            yield (
                None,
                [
                    ResourceError(
                        name, None, "-", "", None, f"file is larger than {MAX_FILE_BYTES} bytes"
                    )
                ],
                None,
                None,
            )
            return
        text = path.read_text(encoding="utf-8")
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (OSError, UnicodeDecodeError) as exc:
        yield None, [ResourceError(name, None, "-", "", None, f"cannot read: {exc}")], None, None
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        yield (
            None,
            [ResourceError(name, line, "-", "", None, f"invalid YAML: {problem}")],
            line,
            None,
        )
        return
    for index, node in enumerate(nodes[:MAX_DOCUMENTS]):
        if node is None:
            continue
        line = node.start_mark.line + 1
        resource, errors, ident = _load_document(name, index, node, registry)
        yield resource, errors, line, ident


def _load_document(
    file: str, index: int, node: yaml.Node, registry: KindRegistry
) -> tuple[Resource | None, list[ResourceError], tuple[str, str] | None]:
    resource, errors = _validate_document(file, index, node, registry)
    ident = None
    if resource is None and isinstance(node, yaml.MappingNode):
        doc = {k.value: v for k, v in node.value}
        kind = getattr(doc.get("kind"), "value", None)
        meta = doc.get("metadata")
        fields = {k.value: v for k, v in meta.value} if isinstance(meta, yaml.MappingNode) else {}
        name = getattr(fields.get("name"), "value", None)
        namespace = getattr(fields.get("namespace"), "value", None) or "default"
        if isinstance(kind, str) and isinstance(name, str):
            ident = (kind, f"{namespace}/{name}")
    return resource, errors, ident


def _validate_document(
    file: str, index: int, node: yaml.Node, registry: KindRegistry
) -> tuple[Resource | None, list[ResourceError]]:
    line = node.start_mark.line + 1
    try:
        doc = yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        return None, [ResourceError(file, line, f"document {index + 1}", "", None, str(exc))]
    label = f"document {index + 1}"
    if not isinstance(doc, dict):
        return None, [
            ResourceError(
                file, line, label, "", None, "a manifest must be a mapping with apiVersion and kind"
            )
        ]
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    label = f"{doc.get('kind', '?')}/{name or '?'}"
    model = registry.models.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
    if model is None:
        return None, [
            ResourceError(
                file,
                line,
                label,
                "apiVersion/kind",
                f"{doc.get('apiVersion')}/{doc.get('kind')}",
                f"unknown kind; known: {registry.describe()}",
            )
        ]
    try:
        resource = model.model_validate(doc)
    except ValidationError as exc:
        return None, [_from_pydantic(file, node, label, doc, e) for e in exc.errors()]
    errors = [
        ResourceError(file, _line_of(node, path) or line, label, path, value, message)
        for check in registry.checks.get(model.KIND, [])
        for path, value, message in check(resource)
    ]
    return (None if errors else resource), errors


def _from_pydantic(
    file: str, node: yaml.Node, label: str, doc: Mapping[str, Any], error: Any
) -> ResourceError:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    path = _format_path(loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field (unknown fields are errors)"
    elif error["type"] == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    elif error["type"] == "missing":
        message = "required field is missing"
    value = None if error["type"] == "missing" else error.get("input")
    return ResourceError(file, _line_of(node, path), label, path, value, message)


def _format_path(loc: Sequence[str]) -> str:
    out = ""
    for part in loc:
        if part.isdigit():
            out += f"[{part}]"
        elif part in ("str", "int", "float", "bool", "list", "dict") or "[" in part:
            continue  # pydantic's union-member tags are not fields
        else:
            out += f".{part}" if out else part
    return out


def _line_of(node: yaml.Node, path: str) -> int | None:
    current: yaml.Node | None = node
    for part in path.replace("[", ".").replace("]", "").split("."):
        if not part or current is None:
            continue
        if isinstance(current, yaml.MappingNode):
            current = next((v for k, v in current.value if k.value == part), None)
        elif isinstance(current, yaml.SequenceNode) and part.isdigit():
            items = current.value
            current = items[int(part)] if int(part) < len(items) else None
        else:
            current = None
    return current.start_mark.line + 1 if current is not None else None


def _derive(loaded: ResourceSet, registry: KindRegistry) -> list[ResourceError]:
    named = {(r.kind, r.key): r for r in loaded.resources}
    errors: list[ResourceError] = []
    for r in list(loaded.resources):
        derive = registry.derivations.get(r.kind)
        if derive is None:
            continue
        file, line = loaded.origins.get(id(r), ("-", None))
        try:
            made = derive(r, lambda k, n: named.get((k, n)))
        except ValueError as exc:
            field_path = getattr(exc, "field", "")
            errors.append(
                ResourceError(
                    file, line, _label(r), field_path, getattr(exc, "value", None), str(exc)
                )
            )
            continue
        if (made.kind, made.key) in named:
            errors.append(
                ResourceError(
                    file,
                    line,
                    _label(r),
                    "metadata.name",
                    r.name,
                    f"stands for {made.kind} {made.key}, which is also defined",
                )
            )
            continue
        named[(made.kind, made.key)] = made
        loaded.resources.append(made)
        loaded.origins[id(made)] = (file, line)
    return errors


def _cross_checks(loaded: ResourceSet, platform: Platform) -> list[ResourceError]:
    """References between resources; a reference to a document that failed its own
    validation is not reported again."""
    named = {(r.kind, r.key): r for r in loaded.resources}
    errors: list[ResourceError] = []
    for r in loaded.resources:
        file, line = loaded.origins.get(id(r), ("-", None))
        spec = getattr(r, "spec", None)
        if (
            r.kind == "Trigger"
            and spec is not None
            and ("Broker", f"{r.namespace}/{spec.broker}") not in named
            and ("Broker", f"{r.namespace}/{spec.broker}") not in loaded.invalid
        ):
            errors.append(
                ResourceError(
                    file,
                    line,
                    _label(r),
                    "spec.broker",
                    spec.broker,
                    f"no Broker {spec.broker!r} in namespace {r.namespace!r}",
                )
            )
        for path, role, dest in _destinations(r):
            if dest.ref is None:
                continue
            ref_key = (dest.ref.kind, f"{dest.ref.namespace or r.namespace}/{dest.ref.name}")
            if ref_key in loaded.invalid:
                continue
            try:
                resolve(dest, r.namespace, role, platform, lambda k, n: named.get((k, n)))
            except RefError as exc:
                errors.append(
                    ResourceError(file, line, _label(r), f"{path}.{exc.field}", exc.value, str(exc))
                )
    return errors


def _destinations(resource: Resource) -> Iterable[tuple[str, Role, Any]]:
    spec = getattr(resource, "spec", None)
    subscriber = getattr(spec, "subscriber", None)
    if subscriber is not None:
        yield "spec.subscriber", "subscriber", subscriber
    sink = getattr(spec, "sink", None)
    if sink is not None:
        yield "spec.sink", "sink", sink
    delivery = getattr(spec, "delivery", None)
    if delivery is not None and delivery.dead_letter_sink is not None:
        yield "spec.delivery.deadLetterSink", "deadLetterSink", delivery.dead_letter_sink


def _label(resource: Resource) -> str:
    return f"{resource.kind}/{resource.name}"


def _show(value: object) -> str | None:
    if value is None:
        return None
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
