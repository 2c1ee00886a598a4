"""A trigger whose subscriber is a canary split, through the whole system: a real
ingress, the broker class under test, and a real recording subscriber over loopback
with one path per target.

The counts are checked against a binomial bound computed here (5 standard
deviations), never a fixed tolerance; waiting is on conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from eventing.app.cli import main
from eventing.app.runtime import Running
from tests.conftest import SystemFactory
from tests.support.mesh import (
    NAMESPACE,
    admin_json,
    broker_doc,
    manifests,
    metric_value,
    metrics_text,
    settled,
    trigger_key,
    wait_until,
)
from tests.support.subscriber import Answer, Received, RecordingSubscriber


@pytest.fixture(params=["embedded", "memory"])
def broker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


FAST = {"backoffDelay": "PT0.01S", "backoffPolicy": "linear", "jitter": 0}


def split_trigger(
    name: str, url: str, percents: dict[str, int], delivery: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "broker": "default",
        "subscriber": {
            "split": [{"uri": f"{url}/{path}", "percent": p} for path, p in percents.items()]
        },
    }
    if delivery is not None:
        spec["delivery"] = delivery
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": spec,
    }


def binomial_bound(n: int, p: float, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(n * p * (1 - p))


async def post_batches(
    running: Running, count: int, keys: int | None = None, prefix: str = "e"
) -> None:
    """``count`` events in batches of 1000; with ``keys``, partition keys k0..k{keys-1}."""
    url = f"{running.ingress_url}/{NAMESPACE}/default"
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    async with aiohttp.ClientSession() as http:
        for start in range(0, count, 1000):
            batch = []
            for i in range(start, min(count, start + 1000)):
                event = {"specversion": "1.0", "id": f"{prefix}{i}", "source": "/t", "type": "t"}
                if keys is not None:
                    event["partitionkey"] = f"k{i % keys}"
                batch.append(event)
            async with http.post(url, data=json.dumps(batch), headers=headers) as r:
                assert r.status == 202, await r.text()


async def status_output(running: Running, *flags: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventing.app.cli",
        "status",
        "--admin",
        running.admin_url,
        *flags,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return out.decode()


async def test_ten_thousand_events_split_90_10_within_a_binomial_bound(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    n = 10_000
    running = await system(
        manifests(broker_doc(), split_trigger("canary", subscriber.url, {"v10": 90, "v12": 10}))
    )
    await post_batches(running, n)
    await subscriber.wait_count(n, timeout=120)
    await settled(running, timeout=60)
    v10, v12 = len(subscriber.ids("/v10")), len(subscriber.ids("/v12"))
    assert v10 + v12 == n
    assert len(set(subscriber.ids())) == n  # each event once, to one target
    bound = binomial_bound(n, 0.1)
    assert abs(v12 - n * 0.1) <= bound, (v12, bound)
    routes = running.system.triggers[trigger_key("canary")].dispatcher.split.routes
    assert [(r.delivered, r.failed, r.routed) for r in routes] == [(v10, 0, 0), (v12, 0, 0)]

    # The split and the per-target counts: status as JSON, YAML and the table, and metrics.
    doc = json.loads(await status_output(running, "-o", "json"))
    (trig,) = [t for t in doc["triggers"] if t["name"] == "default/canary"]
    assert [(s["target"], s["percent"], s["delivered"], s["failed"]) for s in trig["split"]] == [
        (f"{subscriber.url}/v10", 90, v10, 0),
        (f"{subscriber.url}/v12", 10, v12, 0),
    ]
    assert trig["subscriber"].startswith("split: ")
    as_yaml = yaml.safe_load(await status_output(running, "-o", "yaml"))
    assert as_yaml["triggers"][0]["split"] == trig["split"]
    text = await status_output(running)
    assert "SPLIT TRIGGER" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("default/canary ")]
    assert ["default/canary", "10%", f"{subscriber.url}/v12", "0", str(v12), "0"] in rows, text
    async with aiohttp.ClientSession() as http:
        metrics = await metrics_text(http, running)
        code, ui = await admin_json(http, running, "/v1/ui/state")  # the dashboard's graph
    assert code == 200
    (shown,) = ui["topology"]["triggers"]
    assert [(t["id"], t["percent"]) for t in shown["targets"]] == [
        (f"{subscriber.url}/v10", 90),
        (f"{subscriber.url}/v12", 10),
    ]
    labels = {"trigger": "default/canary", "target": f"{subscriber.url}/v12"}
    assert (
        metric_value(metrics, "eventing_split_deliveries_total", {**labels, "outcome": "delivered"})
        == v12
    )
    assert metric_value(metrics, "eventing_split_percent", labels) == 10


async def test_with_ordering_every_key_goes_to_one_target(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    n, keys = 3000, 300
    running = await system(
        manifests(
            broker_doc(),
            split_trigger(
                "sticky",
                subscriber.url,
                {"v10": 90, "v12": 10},
                delivery={"ordering": "ordered"},
            ),
        )
    )
    await post_batches(running, n, keys=keys)
    await subscriber.wait_count(n, timeout=120)
    await settled(running)
    where: dict[str, set[str]] = {}
    order: dict[str, list[int]] = {}
    for received in subscriber.received:
        assert received.event is not None
        key = str(received.event.attributes["partitionkey"])
        where.setdefault(key, set()).add(received.path)
        order.setdefault(key, []).append(int(received.event.id[1:]))
    assert len(where) == keys
    assert all(len(paths) == 1 for paths in where.values())  # sticky
    assert all(ids == sorted(ids) for ids in order.values())  # and in order per key
    canary_keys = sum(1 for paths in where.values() if paths == {"/v12"})
    assert abs(canary_keys - keys * 0.1) <= binomial_bound(keys, 0.1)


async def test_retries_stay_with_the_target_and_dead_letters_name_it(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """The canary fails every request: its events are retried there (never sent to
    the stable version) and dead-lettered with the canary as the failed destination;
    the stable version's events are delivered."""

    def respond(received: Received, _count: int) -> Answer:
        return Answer(500 if received.path == "/v12" else 202)

    subscriber.responder = respond
    n = 400
    running = await system(
        manifests(
            broker_doc(),
            split_trigger(
                "flaky", subscriber.url, {"v10": 80, "v12": 20}, delivery={"retry": 2, **FAST}
            ),
        )
    )
    await post_batches(running, n)
    trig = running.system.triggers[trigger_key("flaky")]
    await wait_until(
        lambda: trig.dispatcher.stats.delivered + trig.dispatcher.stats.dead_lettered == n,
        timeout=60,
        what="every event delivered or dead-lettered",
    )
    await settled(running)
    stable, canary = trig.dispatcher.split.routes
    ok, failed = set(subscriber.ids("/v10")), subscriber.ids("/v12")
    assert not ok & set(failed)  # no event went to both targets
    assert len(failed) == 3 * canary.failed  # each canary event: 1 attempt + 2 retries
    assert (stable.delivered, stable.failed) == (len(ok), 0)
    assert stable.delivered + canary.failed == n
    (queue,) = running.system.dead_letter_queues()
    dead = await queue.list_dead_letters(trigger_key("flaky"), 1000)
    assert len(dead) == canary.failed
    assert {d.event.attributes["knativeerrordest"] for d in dead} == {f"{subscriber.url}/v12"}


async def test_replies_from_a_target_go_back_into_the_broker(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    from eventing.events import Event

    def respond(received: Received, _count: int) -> Answer:
        if received.path in ("/v10", "/v12") and received.event is not None:
            reply = Event(
                {
                    "specversion": "1.0",
                    "id": "r-" + received.event.id,
                    "source": "/r",
                    "type": "reply",
                },
                b"",
            )
            return Answer(200, reply=reply)
        return Answer(202)

    subscriber.responder = respond
    running = await system(
        manifests(
            broker_doc(),
            {**split_trigger("split", subscriber.url, {"v10": 50, "v12": 50})}
            | {
                "spec": {
                    **split_trigger("split", subscriber.url, {"v10": 50, "v12": 50})["spec"],
                    "filters": [{"exact": {"type": "t"}}],
                }
            },
            {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Trigger",
                "metadata": {"name": "replies"},
                "spec": {
                    "broker": "default",
                    "filters": [{"exact": {"type": "reply"}}],
                    "subscriber": {"uri": f"{subscriber.url}/replies"},
                },
            },
        )
    )
    await post_batches(running, 50)
    await subscriber.wait_count(50, "/replies", timeout=60)
    await settled(running)
    assert sorted(subscriber.ids("/replies")) == sorted(f"r-e{i}" for i in range(50))


def test_bad_splits_are_refused_by_validate_with_file_line_and_path(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def trigger(split: str) -> str:
        return (
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n---\n"
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n"
            "spec:\n  broker: default\n  subscriber:\n    split:\n" + split
        )

    a = "      - {uri: 'http://127.0.0.1:9/a', percent: %s}\n"
    b = "      - {uri: 'http://127.0.0.1:9/b', percent: %s}\n"
    cases = {
        "sum": (trigger(a % 90 + b % 5), ":12: Trigger/t spec.subscriber.split = ", "add up to 95"),
        "negative": (
            trigger(a % 110 + b % -10),
            ":13: Trigger/t spec.subscriber.split[1].percent = -10",
            "greater than or equal to 0",
        ),
        "empty": (
            trigger("      []\n").replace("split:\n      []", "split: []"),
            ":11: Trigger/t spec.subscriber.split = []",
            "at least one target",
        ),
        "duplicate": (
            trigger(a % 50 + a % 50),
            ":13: Trigger/t spec.subscriber.split[1] = 'http://127.0.0.1:9/a'",
            "same target as split[0]",
        ),
        "not a whole number": (
            trigger(a % 90.5 + b % 9.5),
            ":12: Trigger/t spec.subscriber.split[0].percent = 90.5",
            "valid integer",
        ),
    }
    for case, (text, where, why) in cases.items():
        directory = tmp_path / case.replace(" ", "-")
        directory.mkdir()
        (directory / "canary.yaml").write_text(text)
        assert main(["validate", str(directory)]) == 1, case
        err = capsys.readouterr().err
        assert f"canary.yaml{where}" in err, (case, err)
        assert why in err, (case, err)


def _rewrite_trigger(tmp_path: Path, trigger: dict[str, Any]) -> None:
    """Replace the trigger in the running system's manifests, as an editor saves."""
    path = tmp_path / "manifests0" / "system.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] != "Trigger"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all([*docs, trigger], sort_keys=False))
    os.replace(tmp, path)


async def test_a_split_changed_while_running(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """A one-target split becomes 50/50, then 0/100, each applied live: events
    accepted after each change go where it says, kept targets keep their counts, and
    nothing is lost or delivered twice."""
    url = subscriber.url
    running = await system(manifests(broker_doc(), split_trigger("t", url, {"a": 100})), watch=True)
    trig = running.system.triggers[trigger_key("t")]

    async def change(percents: dict[str, int], prefix: str) -> None:
        assert running.reconciler is not None
        before = running.reconciler.applied
        _rewrite_trigger(tmp_path, split_trigger("t", url, percents))
        await wait_until(
            lambda: (
                running.reconciler is not None
                and running.reconciler.applied > before
                and [r.percent for r in trig.dispatcher.split.routes] == list(percents.values())
            ),
            what="the split applied",
        )
        await post_batches(running, 400, prefix=prefix)

    await post_batches(running, 100, prefix="one-")
    await subscriber.wait_count(100, timeout=60)  # each batch delivered before a change
    await change({"a": 50, "b": 50}, "half-")
    await subscriber.wait_count(500, timeout=60)
    await change({"a": 0, "b": 100}, "all-b-")
    await subscriber.wait_count(900, timeout=60)
    await settled(running)
    a, b = set(subscriber.ids("/a")), set(subscriber.ids("/b"))
    assert len(subscriber.ids()) == 900  # each event once
    assert {i for i in a | b if i.startswith("one-")} <= a
    half_b = sum(1 for i in b if i.startswith("half-"))
    assert abs(half_b - 200) <= binomial_bound(400, 0.5)
    assert all(i in b for i in subscriber.ids() if i.startswith("all-b-"))
    routes = trig.dispatcher.split.routes
    assert [r.delivered for r in routes] == [len(a), len(b)]  # counts kept across changes


async def test_retries_follow_a_split_changed_while_they_wait(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """Events retrying against a failing target go to the new split's choice at their
    next attempt once the split is changed live (as for any changed subscriber)."""
    subscriber.responder = lambda r, _n: Answer(503 if r.path == "/a" else 202)
    url = subscriber.url
    delivery = {"retry": 1000, "backoffDelay": "PT0.05S", "backoffPolicy": "linear"}
    running = await system(
        manifests(broker_doc(), split_trigger("t", url, {"a": 100}, delivery)), watch=True
    )
    await post_batches(running, 20)
    await subscriber.wait_for(lambda rs: len(set(subscriber.ids("/a"))) == 20)
    assert running.reconciler is not None
    before = running.reconciler.applied
    _rewrite_trigger(tmp_path, split_trigger("t", url, {"a": 0, "b": 100}, delivery))
    await wait_until(
        lambda: running.reconciler is not None and running.reconciler.applied > before,
        what="the split applied",
    )
    await subscriber.wait_for(lambda rs: len(set(subscriber.ids("/b"))) == 20, timeout=60)
    await settled(running)
    trig = running.system.triggers[trigger_key("t")]
    assert trig.dispatcher.stats.dead_lettered == 0
    assert sorted(subscriber.ids("/b")) == sorted(f"e{i}" for i in range(20))
