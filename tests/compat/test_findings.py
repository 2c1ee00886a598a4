"""Issue 12's findings, one test each: Knative manifests as a new user writes them
(from Knative's docs and repositories) load, run, or are refused for a stated reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from eventing.app.broker_classes import broker_classes
from eventing.app.registry import kind_registry
from eventing.broker.sqlite_store import SqliteSettings
from eventing.resources.broker import Broker
from eventing.resources.loader import LoadError, ResourceSet, load_resources
from eventing.resources.trigger import InternalTrigger, Trigger
from tests.conftest import SystemFactory
from tests.support.subscriber import RecordingSubscriber
from triggers.cesql import compile_expression

ROOT = Path(__file__).resolve().parents[2]

BROKER = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
"""


def load(tmp_path: Path, text: str, *, local: bool = True, partial: bool = False) -> ResourceSet:
    (tmp_path / "m.yaml").write_text(text)
    return load_resources(tmp_path, kind_registry(), local=local, partial=partial)


def test_kafkasource_v1_loads(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        BROKER
        + """---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata:
  name: kafka-source
spec:
  consumerGroup: knative-group
  bootstrapServers:
  - my-cluster-kafka-bootstrap.kafka:9092
  topics:
  - knative-demo-topic
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: default
""",
    )
    assert loaded.kinds() == {"Broker": 1, "KafkaSource": 1}


def test_comment_only_keys_and_null_spec_load_as_absent(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  annotations:
    # eventing.knative.dev/broker.class: Kafka
  labels:
spec:
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t
spec:
  broker: default
  filter:
  subscriber:
    uri: http://127.0.0.1:9/
""",
    )
    broker = loaded.of(Broker)[0]
    assert broker.metadata.annotations == {}
    assert broker.spec.delivery is None


def test_kafka_namespaced_is_the_kafka_class() -> None:
    """Knative's ``KafkaNamespaced`` is its Kafka broker with a data plane per namespace:
    here it must name whatever class ``Kafka`` names, so the two load (or are refused)
    alike. (The Kafka class itself belongs to the broker classes' registry.)"""
    classes = broker_classes(SqliteSettings(Path("events.db")), process_id="test").classes
    assert classes.get("KafkaNamespaced") is classes.get("Kafka")


def test_rabbitmq_adapter_container_name_loads_with_a_warning(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        BROKER
        + """---
apiVersion: sources.knative.dev/v1alpha1
kind: RabbitmqSource
metadata:
  name: rabbitmq-source
spec:
  rabbitmqClusterReference:
    name: rabbitmq
    namespace: default
  rabbitmqResourcesConfig:
    predeclared: true
    queueName: eventing-rabbitmq-source
  adapterContainerName: adapter
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: default
""",
    )
    [warning] = loaded.warnings
    assert warning.path == "spec.adapterContainerName"
    assert "ignored" in warning.message


def test_trigger_broker_ref_loads_and_names_the_broker(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        BROKER.replace("name: default", "name: default\n  namespace: shared")
        + """---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t
  namespace: team
spec:
  brokerRef:
    apiVersion: eventing.knative.dev/v1
    kind: Broker
    name: default
    namespace: shared
  subscriber:
    uri: http://127.0.0.1:9/
""",
    )
    [trigger] = loaded.of(Trigger)
    assert trigger.broker_key == "shared/default"


def test_trigger_broker_ref_to_a_missing_broker_is_reported_at_broker_ref(
    tmp_path: Path,
) -> None:
    text = """apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  brokerRef: {kind: Broker, name: nope}
  subscriber: {uri: "http://127.0.0.1:9/"}
"""
    with pytest.raises(LoadError) as info:
        load(tmp_path, text)
    [error] = info.value.errors
    assert error.path == "spec.brokerRef"
    assert "no Broker 'nope'" in error.message


def test_a_source_sink_uri_loads_through_an_internal_broker(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: test-ping-source
spec:
  schedule: "*/1 * * * *"
  contentType: "application/json"
  data: '{"message": "Hello world!"}'
  sink:
    uri: http://127.0.0.1:9/
""",
    )
    assert loaded.kinds() == {"PingSource": 1}  # internal resources are not counted
    [internal] = [t for t in loaded.of(Trigger) if isinstance(t, InternalTrigger)]
    assert internal.spec.subscriber.uri == "http://127.0.0.1:9/"
    assert internal.reply is None  # a source's sink has no reply path
    [source] = [r for r in loaded.resources if r.kind == "PingSource"]
    assert source.spec.sink.ref.name == internal.broker_name  # type: ignore[attr-defined]


async def test_a_source_sink_uri_delivers(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(f"""apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {{name: shop}}
spec:
  path: /hooks/shop/orders
  sink: {{uri: "{subscriber.url}/orders"}}
""")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{running.ingress_url}/hooks/shop/orders", json={"order": 1}) as r,
    ):
        assert r.status < 300, await r.text()
    [event] = await subscriber.wait_count(1, path="/orders")
    assert event.data is not None
    assert b'"order"' in event.data


TRIGGER_ALONE = """apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: my-service-trigger
spec:
  broker: default
  filter:
    attributes:
      type: dev.knative.samples.helloworld
  subscriber:
    uri: http://127.0.0.1:9/
"""


def test_a_trigger_alone_fails_by_default_and_warns_with_partial(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no Broker 'default'"):
        load(tmp_path, TRIGGER_ALONE)
    loaded = load(tmp_path, TRIGGER_ALONE, partial=True)
    [warning] = loaded.warnings
    assert warning.path == "spec.broker"
    assert "refuses to start until it exists" in warning.message
    assert "not ready until it is created" in warning.message


def test_validate_partial_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TRIGGER_ALONE)
    cli = [sys.executable, "-m", "eventing.app.cli", "validate"]
    refused = subprocess.run(
        [*cli, str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1
    assert "no Broker 'default'" in refused.stderr
    passed = subprocess.run(
        [*cli, "--partial", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert passed.returncode == 0, passed.stderr
    assert "warning:" in passed.stderr
    assert "valid: 1 Trigger" in passed.stdout


def test_validate_refuses_a_service_ref_as_run_would(tmp_path: Path) -> None:
    text = (
        BROKER
        + "---\n"
        + TRIGGER_ALONE.replace(
            "uri: http://127.0.0.1:9/",
            "ref:\n      apiVersion: serving.knative.dev/v1\n"
            "      kind: Service\n      name: event-display",
        )
    )
    with pytest.raises(LoadError, match="cannot be resolved on one machine") as info:
        load(tmp_path, text)
    assert info.value.errors[0].path == "spec.subscriber.ref.kind"
    assert load(tmp_path, text, local=False).kinds() == {"Broker": 1, "Trigger": 1}


async def test_a_broker_is_a_valid_subscriber(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """Knative allows a Trigger to deliver into a Broker (its ingress); validate
    accepts it and run delivers it, one hop of TTL spent."""
    running = await system(f"""{BROKER}---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: audit}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: forward}}
spec:
  broker: default
  subscriber:
    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: audit}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: record}}
spec:
  broker: audit
  subscriber: {{uri: "{subscriber.url}/audit"}}
""")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{running.ingress_url}/default/default",
            data=b"{}",
            headers={
                "ce-specversion": "1.0",
                "ce-id": "e1",
                "ce-source": "/t",
                "ce-type": "x",
                "Content-Type": "application/json",
            },
        ) as r,
    ):
        assert r.status == 202
    [event] = await subscriber.wait_count(1, path="/audit")
    assert event.id == "e1"
    assert event.attributes["knativebrokerttl"] == "254"


@pytest.mark.parametrize(
    ("expression", "attributes"),
    [
        ("flag IN ('yes', 'no')", {"flag": False}),
        ("0 IN ('')", {}),
        ("n IN ('zero', 'one')", {"n": 0}),
    ],
)
def test_cesql_in_keeps_the_cast_error_of_a_literal(
    expression: str, attributes: dict[str, object]
) -> None:
    ok, error = compile_expression(expression).matches(attributes)
    assert error is not None, "the failed cast must be reported"
    assert not ok or error is not None


def test_cesql_in_still_matches_before_a_bad_literal() -> None:
    ok, error = compile_expression("flag IN ('true', 'yes')").matches({"flag": True})
    assert ok
    assert error is None


def test_every_script_the_examples_and_docs_mention_exists() -> None:
    mentioned: set[str] = set()
    for path in [*ROOT.glob("examples/**/*"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]:
        if path.is_file() and path.suffix in (".yaml", ".yml", ".md", ".sh", ".py"):
            mentioned.update(re.findall(r"\bexamples/[\w./-]+\.(?:py|sh|yaml)\b", path.read_text()))
    assert "examples/subscriber.py" in mentioned
    missing = sorted(m for m in mentioned if not (ROOT / m).exists())
    assert not missing, missing


def test_a_trailing_document_separator_is_an_empty_document(tmp_path: Path) -> None:
    """``---`` at the end of a file (common in Knative's samples) is skipped, as kubectl does."""
    assert load(tmp_path, BROKER + "---\n").kinds() == {"Broker": 1}
    assert load(tmp_path, BROKER + "---\n# only a comment\n---\n").kinds() == {"Broker": 1}


def test_a_pingsource_alone_warns_with_partial(tmp_path: Path) -> None:
    text = """apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: test-ping-source
spec:
  schedule: "*/1 * * * *"
  contentType: "application/json"
  data: '{"message": "Hello world!"}'
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: default
"""
    with pytest.raises(LoadError, match="no Broker named 'default'"):
        load(tmp_path, text)
    [warning] = load(tmp_path, text, partial=True).warnings
    assert warning.path == "spec.sink.ref"
    assert "refuses to start until it exists" in warning.message
