"""Every bad manifest gets an error naming file, resource, field path, bad value and
what is allowed; ``load_resources`` reports all errors at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventing.app.broker_classes import broker_classes
from eventing.broker.sqlite_store import SqliteSettings
from eventing.resources import loader
from eventing.resources.base import Resource
from eventing.resources.broker import Broker
from eventing.resources.loader import KindRegistry, LoadError, load_resources
from eventing.resources.trigger import Trigger

BROKER = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
"""


def trigger(spec: str, name: str = "t1") -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}}}
spec:
{spec}
"""


OK_SUB = "  subscriber: {uri: 'http://127.0.0.1:9/'}\n"

# (case, manifest, expected path, expected text in message)
CASES = [
    ("unknown top-level field", BROKER + "extra: 1\n", "extra", "unknown field"),
    (
        "unknown spec field",
        trigger("  broker: default\n  bogus: 1\n" + OK_SUB),
        "spec.bogus",
        "unknown field",
    ),
    ("missing broker", trigger(OK_SUB), "spec", "needs 'broker'"),
    ("missing subscriber", trigger("  broker: default\n"), "spec.subscriber", "required"),
    (
        "subscriber without target",
        trigger("  broker: default\n  subscriber: {}\n"),
        "spec.subscriber",
        "needs 'ref' or 'uri'",
    ),
    (
        "unsupported uri scheme",
        trigger("  broker: default\n  subscriber: {uri: 'ftp://x'}\n"),
        "spec.subscriber",
        "ftp://x",
    ),
    ("bad name", BROKER.replace("default", "Default_Broker"), "metadata.name", "DNS label"),
    (
        "wrong apiVersion",
        BROKER.replace("eventing.knative.dev/v1", "eventing.knative.dev/v9"),
        "apiVersion/kind",
        "unknown kind",
    ),
    (
        "unknown kind",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
        "apiVersion/kind",
        "unknown kind",
    ),
    ("not a mapping", "- 1\n- 2\n", "", "must be a mapping"),
    (
        "uppercase filter key",
        trigger("  broker: default\n  filter: {attributes: {Type: x}}\n" + OK_SUB),
        "spec.filter.attributes",
        "lowercase",
    ),
    (
        "punctuation filter key",
        trigger("  broker: default\n  filter: {attributes: {'s-pace': x}}\n" + OK_SUB),
        "spec.filter.attributes",
        "'s-pace'",
    ),
    (
        "filter key too long",
        trigger("  broker: default\n  filters: [{exact: {abcdefghijklmnopqrstu: x}}]\n" + OK_SUB),
        "spec.filters[0].exact",
        "1 to 20",
    ),
    (
        "two dialects in one filter",
        trigger("  broker: default\n  filters: [{exact: {type: a}, prefix: {type: b}}]\n" + OK_SUB),
        "spec.filters[0]",
        "exactly one",
    ),
    (
        "empty filter object",
        trigger("  broker: default\n  filters: [{}]\n" + OK_SUB),
        "spec.filters[0]",
        "exactly one",
    ),
    (
        "empty exact map",
        trigger("  broker: default\n  filters: [{exact: {}}]\n" + OK_SUB),
        "spec.filters[0]",
        "at least one",
    ),
    (
        "nested bad filter",
        trigger("  broker: default\n  filters: [{any: [{not: {suffix: {TYPE: x}}}]}]\n" + OK_SUB),
        "spec.filters[0].any[0].not.suffix",
        "lowercase",
    ),
    (
        "negative retry",
        trigger("  broker: default\n  delivery: {retry: -1}\n" + OK_SUB),
        "spec.delivery.retry",
        "greater than or equal",
    ),
    (
        "bad backoff policy",
        trigger("  broker: default\n  delivery: {backoffPolicy: random}\n" + OK_SUB),
        "spec.delivery.backoffPolicy",
        "exponential",
    ),
    (
        "number as duration",
        trigger("  broker: default\n  delivery: {backoffDelay: 5}\n" + OK_SUB),
        "spec.delivery.backoffDelay",
        "PT5S",
    ),
    (
        "bad ISO duration",
        trigger("  broker: default\n  delivery: {timeout: 5 seconds}\n" + OK_SUB),
        "spec.delivery.timeout",
        "ISO-8601",
    ),
    (
        "months are rejected",
        trigger("  broker: default\n  delivery: {backoffDelay: P1M}\n" + OK_SUB),
        "spec.delivery.backoffDelay",
        "ISO-8601",
    ),
    (
        "zero timeout",
        trigger("  broker: default\n  delivery: {timeout: PT0S}\n" + OK_SUB),
        "spec.delivery.timeout",
        "greater than 0",
    ),
    (
        "bad format",
        trigger("  broker: default\n  delivery: {format: xml}\n" + OK_SUB),
        "spec.delivery.format",
        "json",
    ),
    (
        "unknown broker class",
        BROKER.replace(
            "{name: default}",
            "{name: default, annotations: {eventing.knative.dev/broker.class: Bogus}}",
        ),
        "metadata.annotations[eventing.knative.dev/broker.class]",
        "not a known broker class",
    ),
    (
        "bad dead letter sink",
        BROKER + "spec: {delivery: {deadLetterSink: {uri: 'mailto:x'}}}\n",
        "spec.delivery.deadLetterSink",
        "mailto:x",
    ),
    (
        "maxInFlight zero",
        trigger("  broker: default\n  delivery: {maxInFlight: 0}\n" + OK_SUB),
        "spec.delivery.maxInFlight",
        "greater than or equal to 1",
    ),
    (
        "filters not a list",
        trigger("  broker: default\n  filters: {exact: {type: x}}\n" + OK_SUB),
        "spec.filters",
        "list",
    ),
]


def registry() -> KindRegistry:
    classes = broker_classes(SqliteSettings(Path("unused.db")), process_id="test")
    r = KindRegistry()

    def check_class(resource: Resource) -> list[tuple[str, object, str]]:
        assert isinstance(resource, Broker)
        return classes.check_class(resource)

    r.register(Broker, check=check_class)
    r.register(Trigger)
    return r


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(("case", "manifest", "path", "text"), CASES, ids=[c[0] for c in CASES])
def test_bad_manifest(tmp_path: Path, case: str, manifest: str, path: str, text: str) -> None:
    documents = manifest if "kind: Broker" in manifest else BROKER + "---\n" + manifest
    (tmp_path / "bad.yaml").write_text(documents)
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, registry())
    errors = info.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    err = errors[0]
    assert err.file.endswith("bad.yaml")
    assert err.path == path
    assert text in str(err), str(err)
    assert err.resource  # names the resource (Kind/name or the document number)


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BROKER + "bogus: 1\n---\n" + trigger(OK_SUB, "t1"))
    (tmp_path / "b.yml").write_text(
        trigger("  broker: nope\n" + OK_SUB, "t2")
        + "---\n"
        + trigger("  broker: default\n  filters: [{}]\n" + OK_SUB, "t3")
    )
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, registry())
    messages = "\n".join(str(e) for e in info.value.errors)
    assert "a.yaml:4: Broker/default bogus" in messages
    assert "Trigger/t1 spec" in messages
    assert "Trigger/t3 spec.filters[0]" in messages
    assert "Trigger/t2 spec.broker = 'nope'" in messages
    assert len(info.value.errors) == 4


def test_line_numbers_point_at_the_field(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        BROKER + "---\n" + trigger("  broker: default\n  delivery:\n    retry: -3\n" + OK_SUB)
    )
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, registry())
    assert info.value.errors[0].line == 11


def test_unknown_broker_reference(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(BROKER + "---\n" + trigger("  broker: other\n" + OK_SUB))
    with pytest.raises(LoadError, match="no Broker 'other' in namespace 'default'"):
        load_resources(tmp_path, registry())


def test_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(BROKER + "---\n" + BROKER)
    with pytest.raises(LoadError, match="duplicate Broker"):
        load_resources(tmp_path, registry())


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("kind: Broker\nmetadata: {name: [\n")
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, registry())
    assert "invalid YAML" in str(info.value)
    assert info.value.errors[0].line is not None


def test_knative_manifests_load_unchanged(tmp_path: Path) -> None:
    (tmp_path / "k.yaml").write_text("""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  namespace: team-a
  annotations: {eventing.knative.dev/broker.class: MTChannelBasedBroker}
spec:
  delivery:
    retry: 5
    backoffPolicy: exponential
    backoffDelay: PT0.2S
    deadLetterSink: {uri: "dlq:"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: build-on-push, namespace: team-a}
spec:
  broker: default
  filter:
    attributes: {type: dev.knative.source.github.push}
  filters:
    - exact: {type: dev.knative.source.github.push}
    - any:
        - prefix: {source: https://github.com/}
        - not: {suffix: {subject: main}}
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: builder}
    uri: /build
  delivery: {retry: 3, timeout: PT30S, retryAfterMax: PT1M}
""")
    loaded = load_resources(tmp_path, registry(), local=False)
    assert loaded.kinds() == {"Broker": 1, "Trigger": 1}
    with pytest.raises(LoadError, match="cannot be resolved on one machine"):
        load_resources(tmp_path, registry())  # a Knative Service cannot run here
    broker = loaded.of(Broker)[0]
    classes = broker_classes(SqliteSettings(Path("unused.db")), process_id="test")
    assert classes.of(broker).name == "Embedded"  # Knative's MTChannelBasedBroker
    assert broker.spec.delivery.backoff_delay == pytest.approx(0.2)


# --- issue 11, defect 10: bounded manifests --------------------------------------------


def _one_error(tmp_path: Path) -> str:
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, registry())
    assert len(info.value.errors) == 1, [str(e) for e in info.value.errors]
    return str(info.value.errors[0])


def test_alias_bomb_under_an_invalid_field_is_refused_without_expanding(tmp_path: Path) -> None:
    """A billion laughs: nine levels of ten aliases (a few hundred bytes, 10^9 values).
    Before the bound, the error path repr()'d the expanded value (minutes, gigabytes)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    bomb = "\n".join("    " + line for line in lines)
    (tmp_path / "bomb.yaml").write_text(BROKER + "spec:\n  bogus:\n" + bomb + "\n")
    message = _one_error(tmp_path)
    assert "bomb.yaml" in message
    assert "aliases are expanded" in message


def test_deep_nesting_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """100k levels of '[' ended in an uncaught RecursionError."""
    (tmp_path / "deep.yaml").write_text(BROKER + "spec: " + "[" * 100_000 + "]" * 100_000 + "\n")
    message = _one_error(tmp_path)
    assert "nested deeper than" in message


DOC = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b%d}\n"


def test_more_documents_than_the_bound_is_an_error_not_a_partial_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20,000 documents (twice the bound): 10,000 loaded and validate said "valid".
    The bound is lowered here so the test is quick; the rule is the same."""
    monkeypatch.setattr(loader, "MAX_DOCUMENTS", 100)
    (tmp_path / "many.yaml").write_text("---\n".join(DOC % i for i in range(200)))
    message = _one_error(tmp_path)
    assert "more than 100 documents" in message


def test_the_document_bound_covers_the_whole_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "MAX_DOCUMENTS", 100)
    for part in range(3):
        docs = (DOC % (part * 40 + i) for i in range(40))
        (tmp_path / f"part{part}.yaml").write_text("---\n".join(docs))
    message = _one_error(tmp_path)
    assert "part2.yaml" in message
    assert "documents" in message


@pytest.mark.parametrize(
    "uri", ["log:/etc/passwd", "dlq:../../x", "dlq:x", "http://", "http:///x", "ftp://h/"]
)
def test_special_uris_take_nothing_after_the_colon(tmp_path: Path, uri: str) -> None:
    (tmp_path / "x.yaml").write_text(
        BROKER
        + f"spec: {{delivery: {{deadLetterSink: {{uri: '{uri}'}}}}}}\n---\n"
        + trigger(f"  broker: default\n  subscriber: {{uri: '{uri}'}}\n")
    )
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, registry())
    paths = sorted(e.path for e in info.value.errors)
    assert paths == ["spec.delivery.deadLetterSink", "spec.subscriber"], paths


def test_a_long_bad_value_is_shown_short(tmp_path: Path) -> None:
    big = "{" + ", ".join(f"k{i}: [{', '.join(['x'] * 50)}]" for i in range(200)) + "}"
    (tmp_path / "x.yaml").write_text(BROKER + f"spec: {{bogus: {big}}}\n")
    message = _one_error(tmp_path)
    assert len(message) < 400


# --- issue 11, defect 8: two webhook sources on one path --------------------------------


def test_two_webhook_sources_on_one_path_are_an_error(tmp_path: Path) -> None:
    from eventing.app.registry import kind_registry

    hook = """apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {{name: {name}}}
spec:
  path: /hooks/shop/orders
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}
"""
    (tmp_path / "a.yaml").write_text(BROKER + "---\n" + hook.format(name="signed"))
    (tmp_path / "b.yaml").write_text(hook.format(name="twin"))
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, kind_registry())
    [error] = info.value.errors
    assert error.file.endswith("b.yaml")
    assert error.path == "spec.path"
    assert "WebhookSource/signed" in error.message
    assert "unique" in error.message


def test_a_webhook_path_may_not_shadow_another_sources_default_path(tmp_path: Path) -> None:
    from eventing.app.registry import kind_registry

    (tmp_path / "a.yaml").write_text(
        BROKER
        + """---
apiVersion: sources.knative.dev/v1alpha1
kind: GitLabSource
metadata: {name: app}
spec:
  projectUrl: https://gitlab.com/o/app
  eventTypes: [push_events]
  secretToken: {secretKeyRef: {name: gitlab-webhook, key: token}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: open}
spec:
  path: /webhooks/default/app
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""
    )
    with pytest.raises(LoadError, match="webhook path '/webhooks/default/app' is already served"):
        load_resources(tmp_path, kind_registry())
