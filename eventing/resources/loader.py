"""Load a directory of YAML manifests into validated resources, reporting every error.

Why collect instead of stopping at the first error: ``eventing validate`` is run by
people fixing a directory of manifests, and a list of all problems, each with file,
line, resource, field path, bad value and what is allowed, saves them a loop per error.

Kinds come from a :class:`KindRegistry` filled at the composition root, so the core
loads source kinds it does not import.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from eventing.resources.base import Resource
from eventing.resources.flows import expand
from eventing.resources.loaded import (
    Check,
    Claim,
    Derive,
    KindRegistry,
    LoadError,
    ResourceError,
    ResourceSet,
    label,
    show_value,
)
from eventing.resources.references import cross_checks
from eventing.resources.refs import Platform
from eventing.resources.yamlbounds import BoundExceeded, check_bounds

__all__ = [
    "Check",
    "Claim",
    "Derive",
    "KindRegistry",
    "LoadError",
    "ResourceError",
    "ResourceSet",
    "load_resources",
    "manifest_files",
    "show_value",
]


MAX_FILE_BYTES = 4 * 1024 * 1024
#: Documents in one directory (all files together) and manifest files in it.
MAX_DOCUMENTS = 10_000
MAX_FILES = 2_000


def manifest_files(directory: Path) -> list[Path]:
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise LoadError(
            [ResourceError(str(directory), None, "-", "", None, "no such file or directory")]
        )
    files: list[Path] = []
    for p in sorted(directory.rglob("*")):
        # Hidden names are skipped: a ConfigMap volume holds each file twice, as
        # `x.yaml` and inside its hidden `..<timestamp>/` directory (and editors keep
        # `.x.yaml.swp`-style files).
        if any(part.startswith(".") for part in p.relative_to(directory).parts):
            continue
        if p.suffix in (".yaml", ".yml"):
            files.append(p)
            if len(files) > MAX_FILES:
                raise LoadError(
                    [
                        ResourceError(
                            str(directory),
                            None,
                            "-",
                            "",
                            None,
                            f"more than {MAX_FILES} manifest files",
                        )
                    ]
                )
    return files


def load_resources(
    directory: Path,
    registry: KindRegistry,
    *,
    local: bool = True,
    platform: Platform | None = None,
    partial: bool = False,
    exclude: Collection[Path] = (),
) -> ResourceSet:
    """Load and validate every manifest under ``directory``; raise :class:`LoadError`
    listing all problems if there is any.

    References are checked with :func:`eventing.resources.refs.resolve`, exactly as
    ``run`` resolves them, for ``platform`` (default: one machine when ``local``, else
    Kubernetes, where refs to Services resolve to their cluster URL).
    ``partial``: the manifests are part of a larger set (``kubectl apply`` of a Trigger
    whose Broker comes later), so a reference to a resource that is not here is a
    warning saying what would happen, not an error (``eventing validate --partial``).
    ``exclude``: files to leave out (the directory watch sets aside files with errors
    and loads the rest)."""
    platform = platform or Platform(kubernetes=not local)
    errors: list[ResourceError] = []
    loaded = ResourceSet()
    seen: dict[tuple[str, str], str] = {}
    budget = [MAX_DOCUMENTS]
    for path in manifest_files(directory):
        if path in exclude:
            continue
        for resource, err, line, ident, field_line in _load_file(path, registry, budget):
            errors.extend(err)
            if resource is None:
                if ident is not None:
                    loaded.invalid.add(ident)
                continue
            loaded.origins[id(resource)] = (str(path), line)
            if field_line is not None:
                loaded.field_lines[id(resource)] = field_line
            key = (resource.kind, resource.key)
            if key in seen:
                errors.append(
                    ResourceError(
                        str(path),
                        line,
                        label(resource),
                        "metadata.name",
                        resource.name,
                        f"duplicate {resource.kind}; first in {seen[key]}",
                    )
                )
                continue
            seen[key] = str(path)
            loaded.resources.append(resource)
            loaded.warnings.extend(
                ResourceError(str(path), line, label(resource), f, v, m)
                for f, v, m in resource.ignored()
            )
    errors.extend(_derive(loaded, registry))
    errors.extend(expand(loaded, platform))
    found, warned = cross_checks(loaded, registry, platform=platform, partial=partial)
    errors.extend(found)
    loaded.warnings.extend(warned)
    if errors:
        raise LoadError(errors)
    return loaded


#: (resource or None, errors, line, (kind, key) of an invalid document, line of a field).
Loaded = tuple[
    Resource | None,
    list[ResourceError],
    int | None,
    tuple[str, str] | None,
    Callable[[str], int | None] | None,
]


def _file_error(name: str, line: int | None, message: str) -> Loaded:
    return None, [ResourceError(name, line, "-", "", None, message)], line, None, None


def _load_file(path: Path, registry: KindRegistry, budget: list[int]) -> Iterable[Loaded]:
    """The documents of one file; ``budget[0]`` is how many documents the directory
    may still hold (decremented)."""
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            yield _file_error(name, None, f"file is larger than {MAX_FILE_BYTES} bytes")
            return
        text = path.read_text(encoding="utf-8")
        # Bounds first: composing recurses per nesting level and constructing expands
        # aliases, so neither may see a file that passes a bound.
        budget[0] -= check_bounds(text, max(budget[0], 0))
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (OSError, UnicodeDecodeError) as exc:
        yield _file_error(name, None, f"cannot read: {exc}")
        return
    except BoundExceeded as exc:
        budget[0] = min(budget[0], 0)
        yield _file_error(name, exc.line, exc.message)
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        yield _file_error(name, line, f"invalid YAML: {str(problem)[:200]}")
        return
    for index, node in enumerate(nodes):
        if node is None or _empty(node):
            continue
        line = node.start_mark.line + 1
        resource, errors, ident = _load_document(name, index, node, registry)
        yield resource, errors, line, ident, partial(_line_of, node)


def _empty(node: yaml.Node) -> bool:
    """An empty document (a trailing ``---``, or one holding only comments), which
    kubectl skips."""
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


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
        doc = drop_nulls(yaml.SafeLoader("").construct_document(node))
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
                    file, line, label(r), field_path, getattr(exc, "value", None), str(exc)
                )
            )
            continue
        if (made.kind, made.key) in named:
            errors.append(
                ResourceError(
                    file,
                    line,
                    label(r),
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


def drop_nulls(value: Any) -> Any:
    """Kubernetes' reading of YAML: a key whose value is null (``spec: null``, or
    ``annotations:`` holding only comments) is the same as an absent key. The depth
    was bounded before construction, so the recursion is too."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value
