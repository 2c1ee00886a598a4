"""Kubernetes CustomResourceDefinitions for our own kinds, generated from the models.

Why generated: the pydantic models are the one definition of every field (design §3);
a hand-written CRD would drift from them. ``python -m eventing.app.crds deploy/crds``
writes one YAML file per kind, and ``tests/unit/core/test_crds.py`` fails when the
checked-in files differ from what :func:`generate` produces now.

Kinds in our own API group (``eventing.local``) get a CRD in ``deploy/crds``. Knative's
kinds (Broker, Trigger, PingSource, KafkaSource, ...) come with Knative Eventing; for a
cluster without it, ``python -m eventing.app.crds --knative deploy/knative-crds``
writes CRDs for the Knative kinds we serve, in Knative's groups, with the schemas of
our models (so the cluster accepts what ``eventing validate`` accepts). Never apply
those on a cluster where Knative Eventing is installed: they would replace its CRDs.

Kubernetes accepts only *structural* schemas in OpenAPI v3.0 form, which is not the
JSON Schema pydantic writes. The conversion: every ``$ref`` is inlined and ``$defs``
dropped; ``X | None`` (``anyOf`` with ``null``) becomes ``nullable: true``; ``const``
becomes a one-value ``enum``; JSON Schema's numeric ``exclusiveMinimum: 0`` becomes
OpenAPI's ``minimum: 0, exclusiveMinimum: true``; ``title`` and ``examples`` go;
``additionalProperties: false`` goes (Kubernetes prunes unknown fields instead, and
``kubectl`` rejects them with its default strict field validation); durations, held
as float seconds in the models, are ISO-8601 strings in YAML and so in the schema;
``metadata`` is left to Kubernetes; ``status`` keeps whatever the server stores. Any
other union cannot be expressed structurally and stops the generator with an error.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args

import yaml
from pydantic import BeforeValidator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from eventing.resources.base import OUR_GROUP, Resource
from eventing.resources.durations import Duration, format_duration


@dataclass(frozen=True)
class CrdKind:
    """Where a kind's resource model lives. A module that does not exist (yet) is
    skipped, so a kind can be listed before its model lands."""

    module: str
    attribute: str = "MODEL"
    categories: tuple[str, ...] = ("eventing",)


#: Our kinds. Add a line to generate one more CRD.
KINDS: Final[tuple[CrdKind, ...]] = (
    CrdKind("sources.webhook.adapter", categories=("eventing", "sources")),
    CrdKind("sources.mqtt.adapter", categories=("eventing", "sources")),
    CrdKind("eventing.resources.workload", "Workload"),
)

#: Knative's API groups: every kind of these that eventing loads gets a CRD with
#: ``--knative`` (KEDA's kinds come with KEDA and are not generated).
KNATIVE_GROUP_SUFFIX: Final = ".knative.dev"
KNATIVE_LABEL: Final = "eventing.local/knative-kind"

GENERATED_BY: Final = "python -m eventing.app.crds"
_DURATION_MARK: Final = "x-eventing-duration"
_DURATION_FUNC: Final = next(
    m.func for m in get_args(Duration)[1:] if isinstance(m, BeforeValidator)
)
_TYPES: Final = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_FORMATS: Final = frozenset({"int32", "int64", "float", "double", "byte", "date", "date-time"})
#: JSONSchemaProps fields a generated schema may use (a subset of what Kubernetes knows).
ALLOWED_KEYS: Final = frozenset(
    {
        "type",
        "description",
        "default",
        "enum",
        "format",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "nullable",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "x-kubernetes-preserve-unknown-fields",
    }
)


class SchemaError(ValueError):
    """A model's schema cannot be expressed as a Kubernetes structural schema."""


class _Generator(GenerateJsonSchema):
    """pydantic's generator, with durations as strings and every alias choice listed."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        if schema["function"]["function"] is _DURATION_FUNC:
            return {
                "type": "string",
                "description": "An ISO-8601 duration such as PT0.2S, PT30S, PT1M or P1DT2H "
                "(years and months are not allowed).",
                _DURATION_MARK: True,
            }
        return super().function_before_schema(schema)

    def model_fields_schema(self, schema: core_schema.ModelFieldsSchema) -> JsonSchemaValue:
        json_schema = super().model_fields_schema(schema)
        properties: dict[str, Any] = json_schema.get("properties", {})
        for field in schema["fields"].values():
            choices = field.get("validation_alias")
            if not isinstance(choices, list):
                continue
            names = [
                c[0]
                for c in choices
                if isinstance(c, list) and len(c) == 1 and isinstance(c[0], str)
            ]
            primary = next((n for n in names if n in properties), None)
            if primary is None:
                continue
            for other in names:
                if other not in properties:
                    alias = {k: v for k, v in properties[primary].items() if k != "default"}
                    alias["description"] = f"Another name for {primary}."
                    properties[other] = alias
        return json_schema


def generate(*, knative: bool = False) -> list[dict[str, Any]]:
    """One CRD per kind in :data:`KINDS` (or per :func:`knative_models`) whose module
    exists, in that order."""
    if knative:
        return [crd_for(m, _knative_categories(m), knative=True) for m in knative_models()]
    crds = []
    for kind in KINDS:
        model = _load(kind)
        if model is not None:
            crds.append(crd_for(model, kind.categories))
    return crds


def knative_models() -> list[type[Resource]]:
    """Every model of a Knative group that eventing loads, by group and kind."""
    from eventing.app.registry import kind_registry  # the composition of every kind

    models = {
        m
        for (api_version, _), m in kind_registry().models.items()
        if api_version.split("/", 1)[0].endswith(KNATIVE_GROUP_SUFFIX)
    }
    return sorted(models, key=lambda m: (m.API_VERSIONS[0].split("/", 1)[0], m.KIND))


def _knative_categories(model: type[Resource]) -> tuple[str, ...]:
    group = model.API_VERSIONS[0].split("/", 1)[0]
    base = ("all", "knative", "eventing")
    return (*base, "sources") if group.startswith("sources.") else base


def _load(kind: CrdKind) -> type[Resource] | None:
    try:
        module = importlib.import_module(kind.module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and kind.module.startswith(exc.name):
            return None  # the module itself is missing, not one of its imports
        raise
    model = getattr(module, kind.attribute)
    if not (isinstance(model, type) and issubclass(model, Resource)):
        raise TypeError(f"{kind.module}.{kind.attribute} is not a resource model")
    return model


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    return lower + "s"


def crd_for(
    model: type[Resource], categories: Iterable[str] = ("eventing",), *, knative: bool = False
) -> dict[str, Any]:
    """The CustomResourceDefinition of one of our resource models (``knative``: of a
    Knative kind we serve, for a cluster without Knative Eventing)."""
    versions = [v.split("/", 1) for v in model.API_VERSIONS]
    groups = {group for group, _ in versions}
    if not versions or len(groups) != 1:
        raise ValueError(f"{model.__name__}: needs API versions of exactly one group")
    (group,) = groups
    if knative != (group != OUR_GROUP):
        raise ValueError(
            f"{model.__name__}: only kinds of group {OUR_GROUP} get a CRD here; "
            "Knative installs the CRDs of its own kinds"
            if not knative
            else f"{model.__name__}: a kind of group {OUR_GROUP} is not a Knative kind"
        )
    kind = model.KIND
    names = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural(kind),
        "singular": kind.lower(),
        "categories": list(categories),
    }
    schema = openapi_schema(model)
    labels = {"app.kubernetes.io/part-of": "eventing"}
    if knative:
        labels[KNATIVE_LABEL] = "true"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{names['plural']}.{group}",
            "labels": labels,
            "annotations": {"eventing.local/generated-by": GENERATED_BY},
        },
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": index == 0,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
                for index, (_, version) in enumerate(versions)
            ],
        },
    }


def openapi_schema(model: type[Resource]) -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of a resource model."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
    defs: dict[str, Any] = raw.get("$defs", {})
    root: dict[str, Any] = _finish(_convert(raw, defs, (), model.__name__))
    # Kubernetes owns apiVersion, kind and metadata; status is written by a controller.
    envelope = {
        "apiVersion": {
            "type": "string",
            "description": "APIVersion of this representation of the object.",
        },
        "kind": {"type": "string", "description": "The kind of object."},
        "metadata": {"type": "object"},
    }
    status = {
        "type": "object",
        "description": "Written by the system; ignored when a manifest is loaded.",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    rest = {k: v for k, v in root["properties"].items() if k not in (*envelope, "status")}
    root["properties"] = envelope | rest | {"status": status}
    required = [n for n in root.pop("required", []) if n not in envelope]
    if required:
        root["required"] = required
    problems = structural_errors(root)
    if problems:
        raise SchemaError(f"{model.__name__}: " + "; ".join(problems))
    return root


def _convert(
    node: Mapping[str, Any], defs: Mapping[str, Any], seen: tuple[str, ...], path: str
) -> Any:
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        name = str(ref).rsplit("/", 1)[-1]
        if name in seen:  # recursion cannot be inlined: keep whatever is sent
            return {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "description": f"A nested {name} (recursive; validated by eventing, not here).",
            }
        target = _convert(defs[name], defs, (*seen, name), path)
        return _overlay(target, _convert(node, defs, seen, path) if node else {})
    for junctor in ("allOf", "oneOf"):
        members = node.pop(junctor, None)
        if members is not None:
            if len(members) != 1:
                raise SchemaError(f"{path}: {junctor} with several members is not structural")
            return _overlay(
                _convert(members[0], defs, seen, path), _convert(node, defs, seen, path)
            )
    members = node.pop("anyOf", None)
    if members is not None:
        real = [m for m in members if m.get("type") != "null"]
        if len(real) != 1:
            raise SchemaError(
                f"{path}: a union of {len(real)} types cannot be a structural schema; "
                "only 'X | None' can"
            )
        inner = _convert(real[0], defs, seen, path)
        if len(real) != len(members):
            inner["nullable"] = True
        return _overlay(inner, _convert(node, defs, seen, path))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "examples", "$defs", "$schema"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, Mapping):
                out[key] = _convert(value, defs, seen, f"{path}.*")
        elif key == "properties":
            out[key] = {
                name: _convert(prop, defs, seen, f"{path}.{name}") for name, prop in value.items()
            }
        elif key == "items":
            out[key] = _convert(value, defs, seen, f"{path}[]")
        elif key == "format":
            if value in _FORMATS:
                out[key] = value
        elif key == "default":
            if value is not None:
                out[key] = value
        else:
            out[key] = value
    if out.get("type") == "object" and not {"properties", "additionalProperties"} & set(out):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return _ordered(out)


_KEY_ORDER: Final = ("type", "format", "description", "nullable", "default", "enum")


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    """Keys in a stable order people read easily: type and description first."""
    first = {k: schema[k] for k in _KEY_ORDER if k in schema}
    return first | {k: v for k, v in schema.items() if k not in first}


def _overlay(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the field-level keys (description, default, ...) of ``extra``."""
    return _ordered(base | dict(extra))


def _finish(schema: dict[str, Any]) -> dict[str, Any]:
    """Write duration defaults as ISO-8601 text and remove the duration marks."""
    enum = schema.get("enum")
    if isinstance(enum, list) and all(isinstance(v, str) for v in enum):
        # Sorted: typing caches equal Literal types, so the order pydantic reports
        # depends on which model was imported first.
        schema["enum"] = sorted(enum)
    if schema.pop(_DURATION_MARK, False):
        if isinstance(schema.get("default"), int | float):
            schema["default"] = format_duration(float(schema["default"]))
        # Numeric bounds on a duration (ge=0) cannot apply to its text form: eventing
        # checks them when it loads the object.
        for bound in ("ge", "gt", "le", "lt"):
            schema.pop(bound, None)
    for prop in schema.get("properties", {}).values():
        _finish(prop)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _finish(schema[key])
    return schema


def structural_errors(schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Why ``schema`` is not a structural schema Kubernetes accepts (empty when it is).

    Checks the rules a generated schema could break: a ``type`` on every node (unless
    it preserves unknown fields), only known keys (no ``$ref``, ``$defs``, ``title``,
    ``anyOf``...), OpenAPI's boolean ``exclusiveMinimum``, ``additionalProperties``
    never ``false`` nor beside ``properties``, arrays with ``items``, ``required``
    naming declared properties, and defaults and enums of the declared type.
    """
    where = path or "<root>"
    errors = [f"{where}: '{key}' is not allowed" for key in schema if key not in ALLOWED_KEYS]
    kind = schema.get("type")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if kind is None and not preserve:
        errors.append(f"{where}: no type")
    elif kind is not None and kind not in _TYPES:
        errors.append(f"{where}: unknown type {kind!r}")
    for key in ("exclusiveMinimum", "exclusiveMaximum", "nullable"):
        if key in schema and not isinstance(schema[key], bool):
            errors.append(f"{where}: {key} must be a boolean")
    extra = schema.get("additionalProperties")
    if extra is not None:
        if not isinstance(extra, Mapping):
            errors.append(f"{where}: additionalProperties must be a schema")
        elif "properties" in schema:
            errors.append(f"{where}: properties and additionalProperties together")
        else:
            errors.extend(structural_errors(extra, f"{path}.*"))
    properties = schema.get("properties", {})
    if properties and kind != "object":
        errors.append(f"{where}: properties on a non-object")
    for name, prop in properties.items():
        errors.extend(structural_errors(prop, f"{path}.{name}" if path else name))
    missing = [n for n in schema.get("required", []) if n not in properties]
    if missing:
        errors.append(f"{where}: required names undeclared properties {missing}")
    if kind == "array":
        if "items" not in schema:
            errors.append(f"{where}: array without items")
        else:
            errors.extend(structural_errors(schema["items"], f"{path}[]"))
    for value in [*schema.get("enum", []), *([schema["default"]] if "default" in schema else [])]:
        if kind in _TYPES and not matches_type(value, kind):
            errors.append(f"{where}: {value!r} is not of type {kind}")
    return errors


def matches_type(value: object, kind: str) -> bool:
    """Whether a JSON value is of an OpenAPI ``type``."""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "boolean": bool,
        "object": dict,
        "array": list,
    }
    return isinstance(value, checks[kind])


def file_name(crd: Mapping[str, Any]) -> str:
    """``<group>_<plural>.yaml``, as controller-gen names them."""
    spec = crd["spec"]
    return f"{spec['group']}_{spec['names']['plural']}.yaml"


class _Dumper(yaml.SafeDumper):
    """Writes repeated sub-schemas out in full: no ``&anchor``/``*alias`` in a CRD."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _command(knative: bool) -> str:
    return (
        f"{GENERATED_BY} --knative deploy/knative-crds"
        if knative
        else f"{GENERATED_BY} deploy/crds"
    )


def render(crd: Mapping[str, Any]) -> str:
    knative = KNATIVE_LABEL in crd["metadata"]["labels"]
    header = f"# Generated by `{_command(knative)}` from the resource model. Do not edit.\n"
    body = yaml.dump(
        dict(crd), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )
    return header + body


#: The kustomization beside the CRDs, so ``deploy/base`` (and ``kubectl apply -k``) can
#: include the directory as a whole.
KUSTOMIZATION: Final = "kustomization.yaml"


def render_kustomization(crds: Iterable[Mapping[str, Any]], *, knative: bool = False) -> str:
    """The ``kustomization.yaml`` listing the generated CRD files."""
    header = f"# Generated by `{_command(knative)}` with the CRDs. Do not edit.\n"
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [file_name(crd) for crd in crds],
    }
    return header + yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def write(directory: Path, *, knative: bool = False) -> list[Path]:
    """Write every CRD and their kustomization into ``directory``; remove generated
    files of kinds now gone."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    generated = generate(knative=knative)
    for crd in generated:
        path = directory / file_name(crd)
        path.write_text(render(crd), encoding="utf-8")
        written.append(path)
    groups = {c["spec"]["group"] for c in generated} or {OUR_GROUP}
    for group in groups:
        for old in directory.glob(f"{group}_*.yaml"):
            if old not in written:
                old.unlink()
    kustomization = directory / KUSTOMIZATION
    kustomization.write_text(render_kustomization(generated, knative=knative), encoding="utf-8")
    written.append(kustomization)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    knative = args[:1] == ["--knative"]
    args = args[1:] if knative else args
    if len(args) != 1 or args[0].startswith("-"):
        print(f"usage: {GENERATED_BY} [--knative] DIRECTORY", file=sys.stderr)
        return 2
    for path in write(Path(args[0]), knative=knative):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
