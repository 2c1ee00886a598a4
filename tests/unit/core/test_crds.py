"""The generated CRDs: well-formed, structural, up to date with deploy/crds/, and
accepting the same manifests as the pydantic models."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventing.app import crds
from eventing.app.registry import kind_registry
from eventing.resources.base import OUR_GROUP

ROOT = Path(__file__).resolve().parents[3]
DEPLOYED = ROOT / "deploy" / "crds"
EXAMPLES = ROOT / "examples"

GENERATED = crds.generate()
BY_KIND = {c["spec"]["names"]["kind"]: c for c in GENERATED}

#: One realistic manifest per kind; a kind added to crds.KINDS needs one here.
SAMPLES: dict[str, str] = {
    "WebhookSource": """
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: shop-orders, namespace: default}
spec:
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
  path: /hooks/shop/orders
  maxBodyBytes: 65536
  auth: {hmac: {secretKeyRef: {name: shop-webhook, key: secret}}}
  event: {type: com.example.shop.order, subjectHeader: X-Order-Id}
  extensionHeaders: [X-Shop-Region]
  formBodies: json
  ceOverrides: {extensions: {team: shop}}
""",
    "MqttSource": """
apiVersion: eventing.local/v1alpha1
kind: MqttSource
metadata: {name: sensors}
spec:
  url: mqtt://127.0.0.1:1883
  topics: [sensors/+/temperature, sensors/+/humidity]
  qos: 1
  protocolVersion: "5"
  sessionExpiry: PT1H
  keepAlive: PT30S
  sink: {ref: {kind: Broker, name: default}}
  ceOverrides: {extensions: {site: lab}}
""",
    "Workload": """
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {name: builder}
spec:
  command: [python, -m, builder]
  env: [{name: LOG_LEVEL, value: info}]
  readiness: {httpGet: {path: /healthz}}
  scaling: {minReplicas: 0, maxReplicas: 8, concurrencyPerReplica: 4}
""",
}


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def conforms(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server would refuse in ``value`` (a small OpenAPI v3 checker:
    types, nullable, enum, bounds, lengths, pattern, required, and unknown fields,
    which Kubernetes prunes and ``kubectl`` rejects)."""
    where = path or "<root>"
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null is not allowed"]
    kind = schema.get("type")
    if kind is None or path == "metadata":
        return []  # preserve-unknown-fields without a type; metadata is the server's
    if not crds.matches_type(value, kind):
        return [f"{where}: {value!r} is not of type {kind}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and (value <= low if schema.get("exclusiveMinimum") else value < low):
            errors.append(f"{where}: {value} is below the minimum {low}")
        if high is not None and (value >= high if schema.get("exclusiveMaximum") else value > high):
            errors.append(f"{where}: {value} is above the maximum {high}")
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: does not match {schema['pattern']}")
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        for index, item in enumerate(value):
            errors.extend(conforms(item, schema["items"], f"{path}[{index}]"))
    if kind == "object":
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        errors.extend(
            f"{where}: {n} is required" for n in schema.get("required", []) if n not in value
        )
        for name, item in value.items():
            inner = f"{path}.{name}" if path else name
            if name in properties:
                errors.extend(conforms(item, properties[name], inner))
            elif extra is not None:
                errors.extend(conforms(item, extra, inner))
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{inner}: unknown field")
    return errors


def test_generates_our_kinds_only() -> None:
    kinds = set(BY_KIND)
    assert {"WebhookSource", "MqttSource"} <= kinds
    assert not kinds & {"Broker", "Trigger", "PingSource", "KafkaSource", "RabbitmqSource"}
    for crd in GENERATED:
        assert crd["spec"]["group"] == OUR_GROUP


@pytest.mark.parametrize("crd", GENERATED, ids=list(BY_KIND))
def test_crd_has_the_required_fields(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{names['plural']}.{crd['spec']['group']}"
    assert {"kind", "plural", "singular", "listKind"} <= set(names)
    assert names["plural"] == names["plural"].lower()
    assert crd["spec"]["scope"] == "Namespaced"
    versions = crd["spec"]["versions"]
    assert [v["storage"] for v in versions].count(True) == 1
    for version in versions:
        assert version["served"] is True
        assert re.fullmatch(r"v\d+((alpha|beta)\d+)?", version["name"])
        assert version["schema"]["openAPIV3Schema"]["type"] == "object"


@pytest.mark.parametrize("crd", GENERATED, ids=list(BY_KIND))
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    schema = schema_of(crd)
    assert crds.structural_errors(schema) == []
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "$defs", "anyOf", "allOf", "oneOf", "title:", "const:"):
        assert forbidden not in text
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]


def test_the_structural_check_catches_what_kubernetes_refuses() -> None:
    bad: dict[str, Any] = {
        "type": "object",
        "title": "X",
        "additionalProperties": False,
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "c": {"type": "number", "exclusiveMinimum": 0},
            "d": {"type": "array"},
            "e": {"type": "string", "enum": [1]},
        },
        "required": ["z"],
    }
    problems = "\n".join(crds.structural_errors(bad))
    for expected in (
        "'title' is not allowed",
        "additionalProperties must be a schema",
        "a: '$ref' is not allowed",
        "a: no type",
        "b: 'anyOf' is not allowed",
        "c: exclusiveMinimum must be a boolean",
        "d: array without items",
        "e: 1 is not of type string",
        "undeclared properties ['z']",
    ):
        assert expected in problems


def test_conversion_rules() -> None:
    mqtt = schema_of(BY_KIND["MqttSource"])["properties"]["spec"]["properties"]
    # Durations are ISO-8601 strings in YAML, with their defaults written that way too.
    assert mqtt["sessionExpiry"]["type"] == "string"
    assert mqtt["sessionExpiry"]["default"] == "PT86400S"
    assert mqtt["keepAlive"]["default"] == "PT30S"
    # `X | None` is nullable; null defaults are left out.
    assert mqtt["clientId"] == {
        "type": "string",
        "nullable": True,
        "maxLength": 128,
        "minLength": 1,
    }
    assert mqtt["sink"]["properties"]["ref"]["required"] == ["kind", "name"]


def test_exclusive_bounds_use_openapi_booleans() -> None:
    from eventing.resources.base import Resource

    class Probe(Resource):
        API_VERSIONS = (f"{OUR_GROUP}/v1alpha1",)
        KIND = "Probe"
        spec: dict[str, int] | None = None

    schema = crds.openapi_schema(Probe)
    assert schema["properties"]["spec"]["additionalProperties"] == {"type": "integer"}
    assert crds.structural_errors(schema) == []


def test_knative_kinds_are_refused() -> None:
    from eventing.resources.broker import Broker

    with pytest.raises(ValueError, match="Knative installs"):
        crds.crd_for(Broker)


@pytest.mark.parametrize("crd", GENERATED, ids=list(BY_KIND))
def test_checked_in_file_is_current(crd: dict[str, Any]) -> None:
    path = DEPLOYED / crds.file_name(crd)
    assert path.exists(), f"run: python -m eventing.app.crds deploy/crds ({path} is missing)"
    assert path.read_text(encoding="utf-8") == crds.render(crd), (
        f"{path} is stale: run python -m eventing.app.crds deploy/crds"
    )
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == crd


def test_no_stale_files_in_deploy() -> None:
    present = {p.name for p in DEPLOYED.glob("*.yaml")}
    assert present == {crds.file_name(c) for c in GENERATED} | {crds.KUSTOMIZATION}


def test_checked_in_kustomization_lists_every_crd() -> None:
    path = DEPLOYED / crds.KUSTOMIZATION
    assert path.read_text(encoding="utf-8") == crds.render_kustomization(GENERATED), (
        f"{path} is stale: run python -m eventing.app.crds deploy/crds"
    )
    resources = yaml.safe_load(path.read_text(encoding="utf-8"))["resources"]
    assert resources == [crds.file_name(c) for c in GENERATED]


def test_write_replaces_generated_files(tmp_path: Path) -> None:
    (tmp_path / f"{OUR_GROUP}_gone.yaml").write_text("old", encoding="utf-8")
    (tmp_path / "mine.yaml").write_text("kept", encoding="utf-8")
    assert crds.main([str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"mine.yaml", crds.KUSTOMIZATION} | {
        crds.file_name(c) for c in GENERATED
    }
    assert crds.main([]) == 2


@pytest.mark.parametrize("kind", list(BY_KIND))
def test_sample_validates_against_model_and_crd(kind: str) -> None:
    assert kind in SAMPLES, f"add a sample {kind} manifest to SAMPLES"
    manifest = yaml.safe_load(SAMPLES[kind])
    model = kind_registry().models.get((manifest["apiVersion"], kind))
    if model is None:  # a kind whose model exists but is not registered for loading yet
        model = {m.KIND: m for m in _models()}[kind]
    model.model_validate(manifest)
    assert conforms(manifest, schema_of(BY_KIND[kind])) == []


@pytest.mark.parametrize("kind", list(BY_KIND))
def test_crd_refuses_what_the_model_refuses(kind: str) -> None:
    schema = schema_of(BY_KIND[kind])
    manifest = yaml.safe_load(SAMPLES[kind])
    no_spec = copy.deepcopy(manifest)
    del no_spec["spec"]
    assert "<root>: spec is required" in conforms(no_spec, schema)
    unknown = copy.deepcopy(manifest)
    unknown["spec"]["colour"] = "blue"
    assert "spec.colour: unknown field" in conforms(unknown, schema)


def test_crd_refuses_a_number_for_a_duration() -> None:
    manifest = yaml.safe_load(SAMPLES["MqttSource"])
    manifest["spec"]["keepAlive"] = 30
    assert conforms(manifest, schema_of(BY_KIND["MqttSource"])) == [
        "spec.keepAlive: 30 is not of type string"
    ]


def test_examples_of_our_kinds_fit_the_crds() -> None:
    checked = 0
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") not in BY_KIND:
                continue
            if doc.get("apiVersion") != f"{OUR_GROUP}/v1alpha1":
                continue
            assert conforms(doc, schema_of(BY_KIND[doc["kind"]])) == [], path
            checked += 1
    assert checked >= 2


def _models() -> list[Any]:
    return [m for m in (crds._load(k) for k in crds.KINDS) if m is not None]


KNATIVE_DEPLOYED = ROOT / "deploy" / "knative-crds"
KNATIVE = crds.generate(knative=True)


def test_knative_crds_cover_the_knative_kinds_we_serve() -> None:
    kinds = {c["spec"]["names"]["kind"] for c in KNATIVE}
    assert {"Broker", "Trigger", "PingSource", "KafkaSource", "RabbitmqSource"} <= kinds
    served = {
        (api_version.split("/")[0], kind)
        for api_version, kind in kind_registry().models
        if api_version.split("/")[0].endswith(".knative.dev")
    }
    generated = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in KNATIVE}
    assert generated == served
    for crd in KNATIVE:
        assert crd["spec"]["group"].endswith(".knative.dev")
        assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
        assert crd["metadata"]["labels"][crds.KNATIVE_LABEL] == "true"
        for version in crd["spec"]["versions"]:
            assert crds.structural_errors(version["schema"]["openAPIV3Schema"]) == []
        assert [v["storage"] for v in crd["spec"]["versions"]].count(True) == 1


def test_knative_crds_are_checked_in_and_current() -> None:
    present = {p.name for p in KNATIVE_DEPLOYED.glob("*.yaml")}
    assert present == {crds.file_name(c) for c in KNATIVE} | {crds.KUSTOMIZATION}
    for crd in KNATIVE:
        path = KNATIVE_DEPLOYED / crds.file_name(crd)
        assert path.read_text(encoding="utf-8") == crds.render(crd), (
            f"{path} is stale: run python -m eventing.app.crds --knative deploy/knative-crds"
        )
    kustomization = (KNATIVE_DEPLOYED / crds.KUSTOMIZATION).read_text(encoding="utf-8")
    assert kustomization == crds.render_kustomization(KNATIVE, knative=True)


def test_our_kinds_are_not_knative_kinds() -> None:
    from eventing.resources.workload import Workload

    with pytest.raises(ValueError, match="not a Knative kind"):
        crds.crd_for(Workload, knative=True)


def test_duration_bounds_stay_in_eventing() -> None:
    broker = next(c for c in KNATIVE if c["spec"]["names"]["kind"] == "Broker")
    delivery = schema_of(broker)["properties"]["spec"]["properties"]["delivery"]["properties"]
    assert delivery["timeout"]["type"] == "string"
    assert not {"ge", "gt", "minimum"} & set(delivery["timeout"])


def test_example_brokers_and_triggers_fit_the_knative_crds() -> None:
    by_kind = {c["spec"]["names"]["kind"]: schema_of(c) for c in KNATIVE}
    checked = 0
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") in ("Broker", "Trigger"):
                assert conforms(doc, by_kind[doc["kind"]]) == [], path
                checked += 1
    assert checked
