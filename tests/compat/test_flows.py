"""Knative's Sequence, Parallel, Channel and Subscription run end to end on our brokers
(expanded into internal brokers and triggers), against a recording subscriber.

The subscriber plays every service: a step answers 200 with a new event (the next
step's input), a Parallel filter answers with the event to let it through or 202 to
drop it, the final trigger records what came out."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from eventing.app.registry import kind_registry
from eventing.resources.loader import LoadError, load_resources
from tests.conftest import SystemFactory
from tests.support.flow_steps import transform
from tests.support.mesh import send
from tests.support.subscriber import RecordingSubscriber

BROKER = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
"""


async def test_sequence_pipeline_push_build_test_notify(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """A Trigger sends pushes into a Sequence (build, then test); the Sequence's reply
    goes back to the broker, where another Trigger notifies."""
    subscriber.responder = transform
    url = subscriber.url
    running = await system(f"""{BROKER}---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: ci
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
  steps:
    - uri: {url}/step/built
    - uri: {url}/fail-once/tested
      delivery: {{retry: 3, backoffDelay: PT0.01S}}
  reply:
    ref:
      kind: Broker
      apiVersion: eventing.knative.dev/v1
      name: default
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: push-to-ci
spec:
  broker: default
  filter:
    attributes:
      type: push
  subscriber:
    ref:
      apiVersion: flows.knative.dev/v1
      kind: Sequence
      name: ci
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: notify
spec:
  broker: default
  filter:
    attributes:
      type: push.built.tested
  subscriber:
    uri: {url}/notify
""")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "p1", "push", body=b"commit 1")
        await send(http, running, "p2", "push", body=b"commit 2")
    notified = await subscriber.wait_count(2, "/notify")
    assert sorted(e.id for e in notified) == ["p1-built-tested", "p2-built-tested"]
    assert {e.data for e in notified} == {b"commit 1", b"commit 2"}
    # each step got the previous step's reply; the failing step was retried per its delivery
    assert sorted(subscriber.ids("/step/built")) == ["p1", "p2"]
    assert sorted(subscriber.ids("/fail-once/tested")) == ["p1-built"] * 2 + ["p2-built"] * 2
    # the Sequence is addressable at its first channel, as in Knative
    assert "default/ci-kn-sequence-0" in running.system.brokers


async def test_sequence_without_reply_drops_the_last_reply(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    subscriber.responder = transform
    url = subscriber.url
    running = await system(f"""{BROKER}---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {{name: two}}
spec:
  steps:
    - uri: {url}/step/a
    - uri: {url}/step/b
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: all}}
spec:
  broker: default
  subscriber: {{uri: {url}/final}}
""")
    async with aiohttp.ClientSession() as http:
        headers = {"ce-specversion": "1.0", "ce-id": "x1", "ce-source": "/t", "ce-type": "t"}
        async with http.post(
            f"{running.ingress_url}/default/two-kn-sequence-0", headers=headers
        ) as r:
            assert r.status == 202
        await send(http, running, "marker", "marker")
    await subscriber.wait_count(1, "/final")
    await subscriber.wait_count(1, "/step/b")
    assert subscriber.ids("/step/b") == ["x1-a"]
    assert subscriber.ids("/final") == ["marker"]  # nothing of the sequence came back


async def test_parallel_branches_with_filter_and_replies(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    subscriber.responder = transform
    url = subscriber.url
    running = await system(f"""{BROKER}---
apiVersion: flows.knative.dev/v1
kind: Parallel
metadata:
  name: fanout
spec:
  branches:
    - subscriber: {{uri: {url}/step/even}}
      filter: {{uri: {url}/pass-if/even}}
    - subscriber: {{uri: {url}/step/all}}
    - subscriber: {{uri: {url}/step/audit}}
      reply: {{uri: {url}/log}}
  reply:
    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: into-parallel}}
spec:
  broker: default
  filters: [{{exact: {{type: job}}}}]
  subscriber:
    ref: {{apiVersion: flows.knative.dev/v1, kind: Parallel, name: fanout}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: results}}
spec:
  broker: default
  filters: [{{prefix: {{type: job.}}}}]
  subscriber: {{uri: {url}/final}}
""")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "j1", "job", subject="even")
        await send(http, running, "j2", "job", subject="odd")
    await subscriber.wait_count(3, "/final")
    await subscriber.wait_count(2, "/log")
    assert sorted(subscriber.ids("/final")) == ["j1-all", "j1-even", "j2-all"]
    assert sorted(subscriber.ids("/log")) == ["j1-audit", "j2-audit"]
    assert sorted(subscriber.ids("/step/even")) == ["j1"]


async def test_channel_and_subscriptions(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """InMemoryChannel semantics: every subscription gets every event; a
    subscription's reply goes where it says."""
    subscriber.responder = transform
    url = subscriber.url
    running = await system(f"""apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {{name: orders}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {{name: audit}}
spec:
  channel: {{apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}}
  subscriber: {{uri: {url}/audit}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {{name: enrich}}
spec:
  channel: {{apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}}
  subscriber: {{uri: {url}/step/enriched}}
  reply: {{uri: {url}/final}}
""")
    async with aiohttp.ClientSession() as http:
        headers = {"ce-specversion": "1.0", "ce-id": "o1", "ce-source": "/t", "ce-type": "order"}
        async with http.post(
            f"{running.ingress_url}/default/orders-kn-channel", headers=headers
        ) as r:
            assert r.status == 202
    [final] = await subscriber.wait_count(1, "/final")
    await subscriber.wait_count(1, "/audit")
    assert final.id == "o1-enriched"
    assert final.type == "order.enriched"


def _load_errors(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, kind_registry())
    return [f"{e.resource} {e.path}: {e.message}" for e in info.value.errors]


def test_flow_references_are_checked_where_they_are_written(tmp_path: Path) -> None:
    errors = _load_errors(
        tmp_path,
        f"""{BROKER}---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {{name: s}}
spec:
  steps:
    - ref: {{kind: Workload, name: nope}}
    - uri: http://127.0.0.1:9/
      delivery: {{deadLetterSink: {{ref: {{kind: Workload, name: w}}}}}}
  reply: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: x}}}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {{name: sub}}
spec:
  channel: {{apiVersion: messaging.knative.dev/v1, kind: Channel, name: missing}}
  subscriber: {{uri: http://127.0.0.1:9/}}
""",
    )
    assert any(e.startswith("Sequence/s spec.steps[0].ref: no Workload") for e in errors)
    assert any(e.startswith("Sequence/s spec.steps[1].delivery.deadLetterSink.ref") for e in errors)
    assert any(e.startswith("Sequence/s spec.reply.ref.kind") for e in errors)
    assert any(e.startswith("Subscription/sub spec.channel: no Channel") for e in errors)
    assert len(errors) == 4, errors


def test_an_internal_name_clash_is_reported(tmp_path: Path) -> None:
    errors = _load_errors(
        tmp_path,
        f"""{BROKER.replace("name: default", "name: s-kn-sequence-0")}---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {{name: s}}
spec:
  steps: [{{uri: "http://127.0.0.1:9/"}}]
""",
    )
    assert len(errors) == 1
    assert "internal Broker named 's-kn-sequence-0'" in errors[0]


def test_flows_load_and_count_as_written(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("""apiVersion: flows.knative.dev/v1
kind: Parallel
metadata: {name: p}
spec:
  branches:
    - filter: {uri: "http://127.0.0.1:9/f"}
      subscriber: {uri: "http://127.0.0.1:9/s"}
""")
    loaded = load_resources(tmp_path, kind_registry())
    assert loaded.kinds() == {"Parallel": 1}
    names = sorted(r.name for r in loaded.resources if r.kind in ("Broker", "Trigger"))
    assert names == [
        "p-kn-parallel",
        "p-kn-parallel-0",
        "p-kn-parallel-0",
        "p-kn-parallel-filter-0",
    ]
