"""Knative's broker rules (cloudevents-conformance.md §5) against the whole system and
a real recording subscriber over loopback.

Waiting is always on a condition with a deadline (a request arrived, a counter moved,
a backlog drained); "exactly once" is asserted after every trigger settled (nothing
pending, nothing in flight), when no further delivery can happen. Delays are kept
tiny with ``backoffDelay: PT0.01S`` and ``jitter: 0``; no test asserts a duration.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from eventing.app.runtime import Running
from eventing.delivery.policy import RetryPolicy
from eventing.events import Event
from eventing.workloads.replica import free_port
from tests.conftest import SystemFactory
from tests.support.broker_classes import params
from tests.support.mesh import (
    NAMESPACE,
    admin_json,
    assert_nothing_stored,
    broker_doc,
    broker_url,
    ce_headers,
    manifests,
    metric_value,
    metrics_text,
    post,
    send,
    settled,
    trigger_doc,
    trigger_key,
    wait_until,
)
from tests.support.subscriber import Answer, Received, RecordingSubscriber
from tests.support.wire import BROKER_ADDED, WireEvent, header, read_delivery


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that runs a system runs once per broker class (one conformance
    suite: embedded, memory, Kafka, RabbitMQ)."""
    if "broker_class" in metafunc.fixturenames:
        metafunc.parametrize("broker_class", params(), indirect=True)


FAST = {"backoffDelay": "PT0.01S", "backoffPolicy": "linear", "jitter": 0}


def _stats(running: Running, name: str) -> Any:
    return running.system.triggers[trigger_key(name)].dispatcher.stats


def fail_first(
    n: int,
    status: int = 500,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    path: str | None = None,
) -> Callable[[Received, int], Answer]:
    """A responder failing the first ``n`` requests (on ``path``), then 202."""
    seen: list[int] = []

    def respond(received: Received, _count: int) -> Answer:
        if path is not None and received.path != path:
            return Answer(202)
        seen.append(1)
        if len(seen) <= n:
            return Answer(status, headers=dict(headers or {}), body=body)
        return Answer(202)

    return respond


def _first(subscriber: RecordingSubscriber, path: str) -> WireEvent:
    """The first request received on ``path``, decoded from the wire."""
    matching = [r for r in subscriber.received if r.path == path]
    assert matching, f"nothing received on {path}"
    return read_delivery(matching[0])


def _closed_port_url() -> str:
    """A loopback URL nobody listens on."""
    return f"http://127.0.0.1:{free_port()}/gone"


# -- 5.1 ingress -------------------------------------------------------------------------


async def test_ingress_statuses(system: SystemFactory, subscriber: RecordingSubscriber) -> None:
    running = await system(manifests(broker_doc(), trigger_doc("t", subscriber.url)))
    url = broker_url(running)
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            assert r.status == 405
            assert r.headers["Allow"] == "POST, OPTIONS"
        for method in ("PUT", "DELETE", "PATCH"):
            async with http.request(method, url) as r:
                assert r.status == 405
        async with http.options(url) as r:
            assert r.status == 200
            assert r.headers["Allow"] == "POST, OPTIONS"
            assert r.headers["WebHook-Allowed-Origin"] == "*"
            assert r.headers["WebHook-Allowed-Rate"] == "*"
        status, _ = await post(http, f"{running.ingress_url}/{NAMESPACE}/nope", ce_headers())
        assert status == 404
        status, _ = await post(http, f"{running.ingress_url}/other/default", ce_headers())
        assert status == 404
        status, _ = await post(http, f"{running.ingress_url}/", ce_headers())
        assert status == 404
        status, _ = await post(http, f"{url}/extra", ce_headers())
        assert status == 404
        no_version = ce_headers()
        del no_version["ce-specversion"]
        status, _ = await post(http, url, no_version)
        assert status == 400
        status, _ = await post(http, url, ce_headers(specversion="19.0"))
        assert 400 <= status < 500
        status, body = await post(http, url, ce_headers("accepted"))
        assert status == 202, body
    await subscriber.wait_count(1)
    await settled(running)
    assert subscriber.ids() == ["accepted"]


# -- 5.2 delivery -----------------------------------------------------------------------


async def test_delivery_carries_prefer_reply_and_every_attribute_unchanged(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(broker_doc(), trigger_doc("t", subscriber.url)))
    data = bytes(range(256))
    v1 = {
        **ce_headers(
            "full",
            "com.example.FullEvent",
            subject="s",
            time="2024-01-02T03:04:05.6Z",
            dataschema="http://x/schema",
            myext="v",
            traceparent=("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ),
        "Content-Type": "application/octet-stream",
    }
    v03 = {
        **ce_headers("old", specversion="0.3", schemaurl="http://x/s"),
        "Content-Type": "text/plain",
    }
    async with aiohttp.ClientSession() as http:
        assert (await post(http, broker_url(running), v1, data))[0] == 202
        assert (await post(http, broker_url(running), v03, b"zero three"))[0] == 202
    await subscriber.wait_count(2)
    by_id = {read_delivery(r).attributes["id"]: r for r in subscriber.received}
    for sent, body in ((v1, data), (v03, b"zero three")):
        received = by_id[sent["ce-id"]]
        assert header(received, "Prefer") == "reply"
        got = read_delivery(received)
        want = {k[3:]: v for k, v in sent.items() if k.startswith("ce-")}
        want["datacontenttype"] = sent["Content-Type"]
        assert got.without_additions() == want  # 0.3 stays 0.3: no upgrade
        assert got.attributes.keys() >= BROKER_ADDED
        assert got.data == body
    assert header(by_id["full"], "traceparent") == v1["ce-traceparent"]


async def test_one_delivery_per_matching_trigger_sharing_a_subscriber(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(
        manifests(
            broker_doc(),
            trigger_doc("a", f"{subscriber.url}/shared"),
            trigger_doc("b", f"{subscriber.url}/shared"),
            trigger_doc("c", f"{subscriber.url}/shared", attributes={"type": "other"}),
        )
    )
    async with aiohttp.ClientSession() as http:
        await send(http, running, "once")
    await subscriber.wait_count(2)
    await settled(running)
    assert subscriber.ids() == ["once", "once"]
    assert _stats(running, "a").delivered == 1
    assert _stats(running, "b").delivered == 1
    assert _stats(running, "c").delivered == 0


async def test_long_message_is_delivered_exactly_once(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(broker_doc(), trigger_doc("t", subscriber.url)))
    body = b"0123456789abcdef" * 2304
    assert len(body) == 36_864
    async with aiohttp.ClientSession() as http:
        await send(http, running, "long", body=body)
    await subscriber.wait_count(1)
    await settled(running)
    assert len(subscriber.received) == 1
    assert subscriber.received[0].body == body
    assert header(subscriber.received[0], "Content-Type") == "text/plain"


async def test_long_reply_is_routed_to_a_second_sink_exactly_once(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(
        manifests(
            broker_doc(),
            trigger_doc(
                "first", f"{subscriber.url}/first", attributes={"type": "com.example.Long"}
            ),
            trigger_doc(
                "second", f"{subscriber.url}/second", attributes={"type": "com.example.LongReply"}
            ),
        )
    )
    reply_data = b"r" * 36_864

    def respond(received: Received, _n: int) -> Answer:
        if received.path == "/first":
            return Answer(
                200,
                reply=Event(
                    {
                        "specversion": "1.0",
                        "id": "reply-1",
                        "source": "/replier",
                        "type": "com.example.LongReply",
                        "datacontenttype": "text/plain",
                    },
                    reply_data,
                ),
            )
        return Answer(202)

    subscriber.responder = respond
    async with aiohttp.ClientSession() as http:
        await send(http, running, "long-request", "com.example.Long", body=b"x" * 36_864)
    await subscriber.wait_count(1, "/second")
    await settled(running)
    assert len(subscriber.received) == 2
    assert subscriber.received[1].body == reply_data


# -- 5.3 / 5.4 retries and dead letters -----------------------------------------------------


def _retry_setup(url: str, retry: int, dls: str | None = None, **extra: Any) -> str:
    delivery: dict[str, Any] = {"retry": retry, **FAST, **extra}
    if dls is not None:
        delivery["deadLetterSink"] = {"uri": dls}
    return manifests(broker_doc(), trigger_doc("t", f"{url}/sub", delivery=delivery))


@pytest.mark.parametrize(
    ("failures", "delivered"),
    [(3, True), (4, False)],
    ids=["fails-3-times-delivered", "fails-4-times-dead-lettered"],
)
async def test_retry_three(
    failures: int, delivered: bool, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_retry_setup(subscriber.url, 3, f"{subscriber.url}/dls"))
    subscriber.responder = fail_first(failures, path="/sub")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "r3")
    if delivered:
        await subscriber.wait_count(4, "/sub")
    else:
        await subscriber.wait_count(1, "/dls")
    await settled(running)
    assert len(subscriber.events("/sub")) == 4  # the first attempt and 3 retries
    stats = _stats(running, "t")
    assert stats.retried == 3
    assert stats.delivered == (1 if delivered else 0)
    assert stats.dead_lettered == (0 if delivered else 1)
    assert len(subscriber.events("/dls")) == (0 if delivered else 1)
    if not delivered:
        dead = _first(subscriber, "/dls")
        assert dead.attributes["eventingattempts"] == "4"


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
async def test_non_retryable_status_goes_straight_to_dead_letter(
    status: int, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_retry_setup(subscriber.url, 5, f"{subscriber.url}/dls"))
    subscriber.responder = fail_first(100, status, body=b"bad event", path="/sub")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "nr")
    await subscriber.wait_count(1, "/dls")
    await settled(running)
    assert len(subscriber.events("/sub")) == 1
    dead = _first(subscriber, "/dls")
    assert dead.attributes["knativeerrorcode"] == str(status)
    assert dead.attributes["eventingattempts"] == "1"
    assert _stats(running, "t").retried == 0


@pytest.mark.parametrize("status", [404, 408, 409, 429, 500, 503])
async def test_retryable_status_is_retried(
    status: int, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_retry_setup(subscriber.url, 2, f"{subscriber.url}/dls"))
    subscriber.responder = fail_first(1, status, path="/sub")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "rs")
    await subscriber.wait_count(2, "/sub")
    await settled(running)
    assert subscriber.ids("/sub") == ["rs", "rs"]
    assert subscriber.events("/dls") == []
    assert _stats(running, "t").delivered == 1
    assert _stats(running, "t").retried == 1


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """The trigger's real policy, recording every backoff it computes."""

    calls: list[tuple[int, float | None, float]] = field(default_factory=list)

    def backoff(
        self, retry_number: int, retry_after: float | None = None, rng: Any = None
    ) -> float:
        delay = super().backoff(retry_number, retry_after, rng)
        self.calls.append((retry_number, retry_after, delay))
        return delay


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_used_and_capped_by_retry_after_max(
    status: int, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """A ``Retry-After: 3600`` would park the event for an hour; ``retryAfterMax``
    caps it to 0.05 s. The computed backoff shows the header was read and used (the
    plain backoff would be 0.01 s); the delivery shows the cap held."""
    running = await system(_retry_setup(subscriber.url, 3, retryAfterMax="PT0.05S"))
    dispatcher = running.system.triggers[trigger_key("t")].dispatcher
    policy = RecordingPolicy(
        **{f: getattr(dispatcher.policy, f) for f in RetryPolicy.__dataclass_fields__}
    )
    dispatcher.policy = policy
    assert policy.backoff_delay == 0.01
    assert policy.retry_after_max == 0.05
    policy.calls.clear()
    subscriber.responder = fail_first(1, status, headers={"Retry-After": "3600"}, path="/sub")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "ra")
    await subscriber.wait_count(2, "/sub")
    await settled(running)
    assert policy.calls == [(1, 3600.0, 0.05)]
    assert replace(policy, calls=[]).backoff(1) == 0.01  # without the header


async def test_trigger_delivery_overrides_broker_delivery(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    # Retry counts only; merging durations is covered by the test below.
    url = subscriber.url
    running = await system(
        manifests(
            broker_doc(
                delivery={"retry": 0, "jitter": 0, "deadLetterSink": {"uri": f"{url}/broker-dls"}}
            ),
            trigger_doc(
                "own",
                f"{url}/own",
                attributes={"type": "own"},
                delivery={
                    "retry": 2,
                    "backoffPolicy": "linear",
                    "deadLetterSink": {"uri": f"{url}/trigger-dls"},
                },
            ),
            trigger_doc("inherits", f"{url}/inherits", attributes={"type": "inherits"}),
        )
    )
    subscriber.responder = lambda r, n: Answer(202 if "dls" in r.path else 500)
    async with aiohttp.ClientSession() as http:
        await send(http, running, "o1", "own")
        await send(http, running, "i1", "inherits")
    await subscriber.wait_count(1, "/trigger-dls")
    await subscriber.wait_count(1, "/broker-dls")
    await settled(running)
    assert subscriber.ids("/own") == ["o1"] * 3
    assert subscriber.ids("/inherits") == ["i1"]
    assert subscriber.ids("/trigger-dls") == ["o1"]
    assert subscriber.ids("/broker-dls") == ["i1"]
    own = _first(subscriber, "/trigger-dls")
    inherited = _first(subscriber, "/broker-dls")
    assert own.attributes["eventingattempts"] == "3"
    assert inherited.attributes["eventingattempts"] == "1"
    assert own.attributes["eventingtrigger"] == trigger_key("own")
    assert inherited.attributes["eventingtrigger"] == trigger_key("inherits")


def test_trigger_and_broker_delivery_with_durations_merge() -> None:
    from eventing.resources.delivery import DeliverySpec, merge

    trigger = DeliverySpec.model_validate({"retry": 2, "backoffDelay": "PT0.01S"})
    broker = DeliverySpec.model_validate({"retry": 0, "timeout": "PT5S"})
    merged = merge(trigger, broker)
    assert (merged.retry, merged.backoff_delay, merged.timeout) == (2, 0.01, 5.0)


@pytest.mark.parametrize(
    ("body", "want_data"),
    [(b'{"why": "no"}', True), (b"", False)],
    ids=["with-body", "without-body"],
)
async def test_dead_letter_sink_gets_knative_error_extensions(
    body: bytes, want_data: bool, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_retry_setup(subscriber.url, 1, f"{subscriber.url}/dls"))
    subscriber.responder = fail_first(100, 503, body=body, path="/sub")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "dl1", body=b"payload")
    await subscriber.wait_count(1, "/dls")
    await settled(running)
    dead = _first(subscriber, "/dls")
    assert dead.attributes["knativeerrordest"] == f"{subscriber.url}/sub"
    assert dead.attributes["knativeerrorcode"] == "503"
    if want_data:
        assert base64.b64decode(dead.attributes["knativeerrordata"]) == body
    else:
        assert "knativeerrordata" not in dead.attributes
    assert dead.attributes["eventingattempts"] == "2"
    assert dead.attributes["eventingtrigger"] == trigger_key("t")
    assert dead.attributes["id"] == "dl1"
    assert dead.data == b"payload"
    assert _stats(running, "t").dead_lettered == 1


async def test_unreachable_subscriber_dead_letter_has_only_the_destination(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    gone = _closed_port_url()
    running = await system(
        manifests(
            broker_doc(),
            trigger_doc(
                "t",
                gone,
                delivery={"retry": 1, **FAST, "deadLetterSink": {"uri": f"{subscriber.url}/dls"}},
            ),
        )
    )
    async with aiohttp.ClientSession() as http:
        await send(http, running, "unreachable")
    await subscriber.wait_count(1, "/dls")
    await settled(running)
    dead = read_delivery(subscriber.received[0])
    assert dead.attributes["knativeerrordest"] == gone
    assert "knativeerrorcode" not in dead.attributes
    assert "knativeerrordata" not in dead.attributes
    assert dead.attributes["eventingattempts"] == "2"


async def test_builtin_dlq_keeps_queryable_and_replayable_dead_letters(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_retry_setup(subscriber.url, 1, "dlq:"))
    subscriber.responder = fail_first(2, 500, body=b"broken", path="/sub")
    async with aiohttp.ClientSession() as http:
        await send(http, running, "kept", body=b"the data")
        queue = running.system.brokers[f"{NAMESPACE}/default"].dead_letters
        assert queue is not None
        await wait_until(
            lambda: queue.depths().get(trigger_key("t")) == 1,
            what="a dead letter in the built-in store",
        )
        await settled(running)
        status, listing = await admin_json(http, running, "/v1/dlq")
        assert status == 200
        [item] = listing["items"]
        attributes = item["attributes"]
        assert item["trigger"] == trigger_key("t")
        assert item["attempts"] == 2
        assert item["status"] == 500
        assert attributes["id"] == "kept"
        assert attributes["knativeerrordest"] == f"{subscriber.url}/sub"
        assert attributes["knativeerrorcode"] == "500"
        assert base64.b64decode(attributes["knativeerrordata"]) == b"broken"
        assert attributes["eventingattempts"] == "2"
        assert attributes["eventingtrigger"] == trigger_key("t")
        status, shown = await admin_json(http, running, f"/v1/dlq/{item['id']}")
        assert status == 200
        assert shown["data"] == "the data"
        status, _ = await admin_json(http, running, "/v1/dlq/999999")
        assert status == 404

        # The subscriber works again: replay delivers it (without the error extensions).
        status, replayed = await admin_json(http, running, "/v1/dlq/replay", {"ids": [item["id"]]})
        assert status == 200
        assert replayed == {"replayed": [item["id"]], "missing": [], "failed": []}
        await subscriber.wait_count(3, "/sub")
        await settled(running)
        status, listing = await admin_json(http, running, "/v1/dlq")
        assert listing["items"] == []
    last = read_delivery(subscriber.received[-1])
    assert last.attributes["id"] == "kept"
    assert last.data == b"the data"
    assert (
        not {
            "knativeerrordest",
            "knativeerrorcode",
            "knativeerrordata",
            "eventingattempts",
            "eventingtrigger",
        }
        & last.attributes.keys()
    )
    assert _stats(running, "t").delivered == 1


# -- replies ------------------------------------------------------------------------------


def _reply_setup(url: str, **delivery: Any) -> str:
    return manifests(
        broker_doc(),
        trigger_doc(
            "first",
            f"{url}/first",
            attributes={"type": "com.example.FullEvent"},
            delivery={**FAST, **delivery} if delivery else None,
        ),
        trigger_doc("second", f"{url}/second", attributes={"type": "com.example.ReplyEvent"}),
    )


def _reply_event(id_: str = "reply-1") -> Event:
    return Event(
        {
            "specversion": "1.0",
            "id": id_,
            "source": "/replier",
            "type": "com.example.ReplyEvent",
            "datacontenttype": "application/json",
        },
        b'{"reply": true}',
    )


@pytest.mark.parametrize("form", ["binary", "structured"])
async def test_200_reply_goes_back_into_the_broker(
    form: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_reply_setup(subscriber.url))
    reply = _reply_event()

    def respond(received: Received, _n: int) -> Answer:
        if received.path != "/first":
            return Answer(202)
        if form == "binary":
            return Answer(200, reply=reply)
        body = json.dumps({**reply.attributes, "data": {"reply": True}}).encode()
        return Answer(200, headers={"Content-Type": "application/cloudevents+json"}, body=body)

    subscriber.responder = respond
    async with aiohttp.ClientSession() as http:
        await send(http, running, "full-1", "com.example.FullEvent")
    await subscriber.wait_count(1, "/second")
    await settled(running)
    first = [r for r in subscriber.received if r.path == "/first"]
    assert len(first) == 1
    assert header(first[0], "Prefer") == "reply"
    got = _first(subscriber, "/second")
    assert got.attributes["id"] == "reply-1"
    assert got.attributes["type"] == "com.example.ReplyEvent"
    assert json.loads(got.data or b"") == {"reply": True}
    assert got.attributes["knativebrokerttl"] == "254"  # one hop spent
    assert _stats(running, "first").replies == 1


async def test_202_with_a_cloudevent_body_is_not_a_reply(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_reply_setup(subscriber.url))
    reply = _reply_event()
    subscriber.responder = lambda r, n: Answer(202, reply=reply)
    async with aiohttp.ClientSession() as http:
        await send(http, running, "full-2", "com.example.FullEvent")
        await subscriber.wait_count(1, "/first")
        await wait_until(lambda: _stats(running, "first").delivered == 1)
        await settled(running)
        # A reply would have been stored before the ack: nothing for the second trigger.
        assert subscriber.events("/second") == []
        assert _stats(running, "first").replies == 0
        # The second trigger does work: a real event of that type reaches it.
        await send(http, running, "direct", "com.example.ReplyEvent")
    await subscriber.wait_count(1, "/second")
    await settled(running)
    assert subscriber.ids("/second") == ["direct"]


async def test_malformed_reply_is_a_failed_delivery(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(
        _reply_setup(subscriber.url, retry=1, deadLetterSink={"uri": f"{subscriber.url}/dls"})
    )

    def respond(received: Received, _n: int) -> Answer:
        if received.path == "/first":  # claims to be a CloudEvent, has no id
            return Answer(
                200,
                headers={
                    "ce-specversion": "1.0",
                    "ce-source": "/r",
                    "ce-type": "com.example.ReplyEvent",
                },
                body=b"oops",
            )
        return Answer(202)

    subscriber.responder = respond
    async with aiohttp.ClientSession() as http:
        await send(http, running, "full-3", "com.example.FullEvent")
    await subscriber.wait_count(1, "/dls")
    await settled(running)
    assert subscriber.ids("/first") == ["full-3", "full-3"]  # retried as a failure
    dead = _first(subscriber, "/dls")
    assert dead.attributes["knativeerrorcode"] == "502"
    assert base64.b64decode(dead.attributes["knativeerrordata"]) == b"oops"
    assert subscriber.events("/second") == []
    assert _stats(running, "first").delivered == 0


# -- TTL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", ["0", "-1", "abc"])
async def test_spent_or_bad_ttl_is_refused(
    ttl: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(broker_doc(), trigger_doc("t", subscriber.url)))
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), ce_headers(knativebrokerttl=ttl))
    assert status == 400, answer
    assert "knativebrokerttl" in json.loads(answer)["error"]
    assert_nothing_stored(running)


async def test_reply_loop_ends_after_the_ttl_budget_and_the_drop_is_counted(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(
        manifests(
            broker_doc(),
            trigger_doc("loop", f"{subscriber.url}/loop", attributes={"type": "com.example.Loop"}),
        )
    )

    def echo(received: Received, n: int) -> Answer:
        assert received.event is not None
        attributes = dict(received.event.attributes)
        attributes["id"] = f"hop-{n}"
        return Answer(200, reply=Event(attributes, received.event.data))

    subscriber.responder = echo
    async with aiohttp.ClientSession() as http:
        await send(http, running, "hop-0", "com.example.Loop", knativebrokerttl="3")
        # The third delivery's reply would carry TTL 0: it is dropped (and counted)
        # before that delivery is acked, so once three are done the loop is over.
        await wait_until(lambda: _stats(running, "loop").delivered == 3, what="3 hops")
        await settled(running)
        text = await metrics_text(http, running)
    labels = {"trigger": trigger_key("loop"), "reason": "ttl"}
    assert metric_value(text, "eventing_events_dropped_total", labels) == 1.0
    ttls = [read_delivery(r).attributes["knativebrokerttl"] for r in subscriber.received]
    assert ttls == ["3", "2", "1"]
    assert [r.path for r in subscriber.received] == ["/loop"] * 3
    assert _stats(running, "loop").replies == 2


# -- ordering -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["spec", "kafka-annotation"])
async def test_ordered_trigger_delivers_each_key_in_order_without_blocking_others(
    how: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """``ordering: ordered`` (or Knative's Kafka annotation): events sharing a
    ``partitionkey`` arrive one at a time in the order accepted, a retry included,
    while another key proceeds."""
    delivery: dict[str, Any] = {**FAST, "retry": 5}
    if how == "spec":
        delivery["ordering"] = "ordered"
    doc = trigger_doc("t", subscriber.url, delivery=delivery)
    if how != "spec":
        doc["metadata"]["annotations"] = {"kafka.eventing.knative.dev/delivery.order": "ordered"}
    running = await system(manifests(broker_doc(), doc))
    failures: list[int] = []

    def answer(received: Received, n: int) -> Answer:
        if received.event is not None and received.event.id == "a-0" and len(failures) < 2:
            failures.append(n)
            return Answer(503)
        return Answer(202)

    subscriber.responder = answer
    sent = {key: [f"{key}-{i}" for i in range(8)] for key in ("a", "b")}
    async with aiohttp.ClientSession() as http:
        for i in range(8):
            for key in ("a", "b"):
                await send(http, running, sent[key][i], partitionkey=key)
    await subscriber.wait_for(lambda rs: len({r.event.id for r in rs if r.event}) >= 16, 60)
    await settled(running)
    order = [r.event.id for r in subscriber.received if r.event is not None]
    for key, ids in sent.items():
        first_seen = list(dict.fromkeys(i for i in order if i.startswith(f"{key}-")))
        assert first_seen == ids, (key, order)
    # nothing of key a overtook its failing first event; b was not held up by it
    assert order.index("a-1") > max(i for i, x in enumerate(order) if x == "a-0")
    assert order.count("a-0") == 3
    assert _stats(running, "t").delivered == 16


async def test_a_split_subscriber_keeps_keys_retries_and_order_on_one_target(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """A canary split (not Knative: our ``subscriber.split``) on every broker class:
    with ordering on, each partition key goes to one target in order, a retry goes
    where its first attempt went, and each event is delivered once."""
    doc = trigger_doc("t", subscriber.url, delivery={**FAST, "retry": 3, "ordering": "ordered"})
    doc["spec"]["subscriber"] = {
        "split": [
            {"uri": f"{subscriber.url}/stable", "percent": 70},
            {"uri": f"{subscriber.url}/canary", "percent": 30},
        ]
    }
    running = await system(manifests(broker_doc(), doc))
    failed: list[str] = []

    def answer(received: Received, _n: int) -> Answer:
        if (
            received.event is not None
            and received.event.id.endswith("-0")
            and received.event.id not in failed
        ):
            failed.append(received.event.id)  # the first event of each key fails once
            return Answer(503)
        return Answer(202)

    subscriber.responder = answer
    keys = [f"k{i}" for i in range(12)]
    async with aiohttp.ClientSession() as http:
        for i in range(6):
            for key in keys:
                await send(http, running, f"{key}-{i}", partitionkey=key)
    await subscriber.wait_for(lambda rs: len({r.event.id for r in rs if r.event}) >= 72, 60)
    await settled(running)
    paths: dict[str, set[str]] = {}
    order: dict[str, list[str]] = {}
    for r in subscriber.received:
        assert r.event is not None
        key = str(r.event.attributes["partitionkey"])
        paths.setdefault(key, set()).add(r.path)
        order.setdefault(key, []).append(r.event.id)
    assert all(len(p) == 1 for p in paths.values()), paths  # sticky, retries included
    for key in keys:
        assert order[key] == [f"{key}-0", *(f"{key}-{i}" for i in range(6))], order[key]
    routes = running.system.triggers[trigger_key("t")].dispatcher.split.routes
    assert sum(r.delivered for r in routes) == 72
    assert _stats(running, "t").retried == 12


# -- 5.5 filters -----------------------------------------------------------------------------


@dataclass
class Ev:
    type: str
    source: str = "/test"
    ext: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        extra = "".join(f"+{k}={v}" for k, v in sorted(self.ext.items()))
        return f"{self.type}@{self.source}{extra}"


async def _route(
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    triggers: dict[str, dict[str, Any]],
    events: list[Ev],
) -> tuple[Running, dict[str, list[str]]]:
    """Run ``triggers`` (name -> trigger_doc keywords), send ``events``, wait until
    everything settled; the ids each trigger's subscriber path received."""
    docs = [
        trigger_doc(name, f"{subscriber.url}/{name}", **spec) for name, spec in triggers.items()
    ]
    running = await system(manifests(broker_doc(), *docs))
    async with aiohttp.ClientSession() as http:
        for ev in events:
            status, answer = await post(
                http, broker_url(running), ce_headers(ev.id, ev.type, source=ev.source, **ev.ext)
            )
            assert status == 202, answer
    await settled(running)
    return running, {name: sorted(subscriber.ids(f"/{name}")) for name in triggers}


def _ids(*events: Ev) -> list[str]:
    return sorted(e.id for e in events)


async def test_legacy_filter_routing(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    mine, other = Ev("mytype"), Ev("notmytype")
    running, got = await _route(
        system,
        subscriber,
        {
            "nofilter": {},
            "alsonofilter": {},
            "mytype": {"attributes": {"type": "mytype"}},
            "sourceandtype": {"attributes": {"type": "mytype", "source": "/elsewhere"}},
        },
        [mine, other],
    )
    assert got == {
        "nofilter": _ids(mine, other),
        "alsonofilter": _ids(mine, other),
        "mytype": _ids(mine),
        "sourceandtype": [],
    }
    async with aiohttp.ClientSession() as http:
        status, doc = await admin_json(http, running, "/v1/status")
    assert status == 200
    [broker] = doc["brokers"]
    assert broker["dropped"][f"{trigger_key('mytype')}:filtered"] == 1
    assert broker["dropped"][f"{trigger_key('sourceandtype')}:filtered"] == 2


async def test_legacy_empty_value_means_present_with_any_value(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    with_ext, other_value = Ev("t", ext={"myext": "a"}), Ev("t", ext={"myext": "b"})
    without, empty = Ev("t"), Ev("t", ext={"myext": ""})
    _, got = await _route(
        system,
        subscriber,
        {
            "present": {"attributes": {"myext": ""}},
            "presentandtype": {"attributes": {"myext": "", "type": "t"}},
            "exactvalue": {"attributes": {"myext": "a"}},
        },
        [with_ext, other_value, without, empty],
    )
    assert got == {
        "present": _ids(with_ext, other_value),
        "presentandtype": _ids(with_ext, other_value),
        "exactvalue": _ids(with_ext),
    }


@pytest.mark.parametrize(
    ("dialect", "spec", "match"),
    [
        (
            "exact",
            {"type": "exact.event.type", "source": "exact.event.source"},
            Ev("exact.event.type", "exact.event.source"),
        ),
        (
            "prefix",
            {"type": "prefix.event", "source": "prefix.event"},
            Ev("prefix.event.type", "prefix.event.source"),
        ),
        (
            "suffix",
            {"type": "event.type", "source": "event.source"},
            Ev("suffix.event.type", "suffix.event.source"),
        ),
    ],
)
async def test_single_dialect_on_type_and_source(
    dialect: str,
    spec: dict[str, str],
    match: Ev,
    system: SystemFactory,
    subscriber: RecordingSubscriber,
) -> None:
    wrong_type = Ev("org.wrong.type", match.source)
    wrong_source = Ev(match.type, "org.wrong.source")
    _, got = await _route(
        system, subscriber, {"f": {"filters": [{dialect: spec}]}}, [match, wrong_type, wrong_source]
    )
    assert got == {"f": _ids(match)}
    # The full event is delivered.
    delivered = read_delivery(subscriber.received[0]).without_additions()
    assert delivered == {
        "specversion": "1.0",
        "id": match.id,
        "type": match.type,
        "source": match.source,
    }


async def test_any_filter(system: SystemFactory, subscriber: RecordingSubscriber) -> None:
    """Knative's ``any`` case without its CESQL members: ``not`` of a suffix stands in
    for ``not(type LIKE '%event.type%')`` (the CESQL form is tested separately)."""
    yes = [
        Ev("exact.event.type"),
        Ev("prefix.event.type"),
        Ev("event.type.suffix"),
        Ev("not.type.event"),
    ]
    no = [Ev("not.event.type")]
    _, got = await _route(
        system,
        subscriber,
        {
            "f": {
                "filters": [
                    {
                        "any": [
                            {"exact": {"type": "exact.event.type"}},
                            {"prefix": {"type": "prefix"}},
                            {"suffix": {"type": "suffix"}},
                            {"not": {"suffix": {"type": "event.type"}}},
                        ]
                    }
                ]
            }
        },
        yes + no,
    )
    assert got == {"f": _ids(*yes)}


async def test_all_filter(system: SystemFactory, subscriber: RecordingSubscriber) -> None:
    yes = Ev("exact.prefix.suffix.event.type")
    no = [
        Ev("exact.prefix.other"),
        Ev("other.suffix.event.type"),
        Ev("exact.prefix.x.suffix.event.type"),
    ]
    _, got = await _route(
        system,
        subscriber,
        {
            "f": {
                "filters": [
                    {
                        "all": [
                            {"exact": {"type": "exact.prefix.suffix.event.type"}},
                            {"prefix": {"type": "exact.prefix"}},
                            {"suffix": {"type": "suffix.event.type"}},
                        ]
                    }
                ]
            }
        },
        [yes, *no],
    )
    assert got == {"f": _ids(yes)}


async def test_missing_attribute_never_matches(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    yes = Ev("t", ext={"extensionattribute": "extensionvalue"})
    no = [
        Ev("t"),
        Ev("t", ext={"extensionattribute": "othervalue"}),
        Ev("t", ext={"otherextension": "extensionvalue"}),
    ]
    _, got = await _route(
        system,
        subscriber,
        {
            "f": {
                "filters": [
                    {
                        "all": [
                            {"exact": {"extensionattribute": "extensionvalue"}},
                            {"prefix": {"extensionattribute": "extension"}},
                            {"suffix": {"extensionattribute": "value"}},
                        ]
                    }
                ]
            },
            "negated": {"filters": [{"not": {"exact": {"extensionattribute": "x"}}}]},
        },
        [yes, *no],
    )
    assert got["f"] == _ids(yes)
    # `not` of a mismatch passes, including when the attribute is missing.
    assert got["negated"] == _ids(yes, *no)


async def test_multiple_top_level_filters_are_anded(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    yes = Ev("order.created", "/shop/eu")
    no = [Ev("order.created", "/shop/us"), Ev("order.deleted", "/shop/eu")]
    _, got = await _route(
        system,
        subscriber,
        {
            "many": {
                "filters": [
                    {"exact": {"type": "order.created"}},
                    {"prefix": {"source": "/shop/eu"}},
                ]
            },
            "all": {
                "filters": [
                    {
                        "all": [
                            {"exact": {"type": "order.created"}},
                            {"prefix": {"source": "/shop/eu"}},
                        ]
                    }
                ]
            },
        },
        [yes, *no],
    )
    assert got == {"many": _ids(yes), "all": _ids(yes)}


async def test_filters_win_over_legacy_filter(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    legacy, new = Ev("legacy.type"), Ev("new.type")
    _, got = await _route(
        system,
        subscriber,
        {
            "both": {
                "attributes": {"type": "legacy.type"},
                "filters": [{"exact": {"type": "new.type"}}],
            },
            "emptyfilters": {"attributes": {"type": "legacy.type"}, "filters": []},
        },
        [legacy, new],
    )
    assert got == {"both": _ids(new), "emptyfilters": _ids(legacy)}


async def test_overlapping_any_filters_on_two_sinks(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    a, b, c, d = Ev("type.a"), Ev("type.b"), Ev("type.c"), Ev("type.d")
    _, got = await _route(
        system,
        subscriber,
        {
            "one": {
                "filters": [{"any": [{"exact": {"type": "type.a"}}, {"exact": {"type": "type.b"}}]}]
            },
            "two": {
                "filters": [{"any": [{"exact": {"type": "type.b"}}, {"suffix": {"type": ".c"}}]}]
            },
        },
        [a, b, c, d],
    )
    assert got == {"one": _ids(a, b), "two": _ids(b, c)}


async def test_cesql_filters(system: SystemFactory, subscriber: RecordingSubscriber) -> None:
    """Knative's ``new_trigger_filters`` cases that use CESQL, as written upstream."""
    any_yes = [
        Ev("exact.event.type"),
        Ev("prefix.event.type"),
        Ev("event.type.suffix"),
        Ev("not.type.event"),
        Ev("cesql.event.type"),
    ]
    any_no = [Ev("not.event.type")]
    all_yes = [Ev("exact.prefix.suffix.event.type")]
    missing_yes = [Ev("m", ext={"extensionattribute": "extensionvalue"})]
    missing_no = [Ev("m")]
    single_yes = [Ev("cesql.type", "cesql.source")]
    single_no = [Ev("org.wrong.type", "cesql.source"), Ev("cesql.type", "org.wrong.source")]
    running, got = await _route(
        system,
        subscriber,
        {
            "any": {
                "filters": [
                    {
                        "any": [
                            {"exact": {"type": "exact.event.type"}},
                            {"prefix": {"type": "prefix"}},
                            {"suffix": {"type": "suffix"}},
                            {"not": {"cesql": "type LIKE '%event.type%'"}},
                            {"cesql": "type = 'cesql.event.type'"},
                        ]
                    }
                ]
            },
            "all": {
                "filters": [
                    {
                        "all": [
                            {"exact": {"type": "exact.prefix.suffix.event.type"}},
                            {"prefix": {"type": "exact.prefix"}},
                            {"suffix": {"type": "suffix.event.type"}},
                            {"cesql": "type LIKE 'exact.prefix.suffix%'"},
                        ]
                    }
                ]
            },
            "missing": {
                "filters": [
                    {
                        "all": [
                            {"exact": {"extensionattribute": "extensionvalue"}},
                            {"cesql": "extensionattribute = 'extensionvalue'"},
                        ]
                    }
                ]
            },
            "single": {"filters": [{"cesql": "type = 'cesql.type' AND source = 'cesql.source'"}]},
            "onlycesql": {"filters": [{"cesql": "extensionattribute = 'extensionvalue'"}]},
        },
        any_yes + any_no + all_yes + missing_yes + missing_no + single_yes + single_no,
    )
    others = all_yes + missing_yes + missing_no + single_yes + single_no
    # `not(type LIKE '%event.type%')` also passes the other groups' events.
    assert got["any"] == _ids(*any_yes, *(e for e in others if "event.type" not in e.type))
    assert got["all"] == _ids(*all_yes)
    assert got["missing"] == _ids(*missing_yes)
    assert got["single"] == _ids(*single_yes)
    assert got["onlycesql"] == _ids(*missing_yes)
    drops = running.system.brokers[f"{NAMESPACE}/default"].drops()
    # A missing attribute is an evaluation error: no match, counted by its kind.
    errors = {
        r: n
        for (t, r), n in drops.items()
        if t == trigger_key("onlycesql") and r.startswith("cesql:")
    }
    assert sum(errors.values()) == len(any_yes + any_no + others) - 1, drops


# -- triggers added, deleted and changed while the broker runs (the reconciler) ---------


def _rewrite(
    tmp_path: Path, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
) -> None:
    """Edit the running system's manifests as an editor saves (rename over)."""
    path = tmp_path / "manifests0" / "system.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(change(docs), sort_keys=False))
    os.replace(tmp, path)


def _without(name: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda docs: [
        d for d in docs if not (d["kind"] == "Trigger" and d["metadata"]["name"] == name)
    ]


def _plus(doc: dict[str, Any]) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda docs: [*docs, doc]


async def _apply(running: Running, tmp_path: Path, change: Any, done: Callable[[], bool]) -> None:
    assert running.reconciler is not None
    before = running.reconciler.applied
    _rewrite(tmp_path, change)
    await wait_until(
        lambda: running.reconciler is not None and running.reconciler.applied > before and done(),
        what="the change applied",
    )


async def _until_delivering(
    http: aiohttp.ClientSession, running: Running, subscriber: RecordingSubscriber, path: str
) -> None:
    """Send probes until one arrives at ``path``: the new trigger is ready (a Kafka group
    got its partitions, a RabbitMQ queue is bound). Knative's rule: a trigger sees the
    events that arrive after it is ready."""
    for n in range(200):
        await send(http, running, f"probe-{n}", "probe")
        with contextlib.suppress(TimeoutError):
            await subscriber.wait_count(1, path, timeout=0.5)
            return
    raise AssertionError(f"nothing arrived at {path}")


async def test_trigger_added_while_running_sees_events_from_then_on(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    running = await system(
        manifests(broker_doc(), trigger_doc("first", f"{subscriber.url}/first")), watch=True
    )
    async with aiohttp.ClientSession() as http:
        await send(http, running, "before")
        await subscriber.wait_for(lambda rs: "before" in subscriber.ids("/first"))
        second = trigger_doc("second", f"{subscriber.url}/second")
        await _apply(running, tmp_path, _plus(second),
                     lambda: trigger_key("second") in running.system.triggers)  # fmt: skip
        await _until_delivering(http, running, subscriber, "/second")
        await send(http, running, "after")
        await subscriber.wait_for(lambda rs: "after" in subscriber.ids("/second"))
        await subscriber.wait_for(lambda rs: "after" in subscriber.ids("/first"))
    await settled(running)
    assert "before" not in subscriber.ids("/second")


async def test_trigger_deleted_while_running_releases_its_backlog(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """The deleted trigger's undelivered events are gone: the same name created again
    starts afresh (pending rows removed, consumer group or queue deleted)."""
    slow_delivery = {"retry": 1000, "backoffDelay": "PT1S", "backoffPolicy": "linear"}
    subscriber.responder = lambda r, n: Answer(202 if r.path != "/slow" or n == 1 else 503)
    running = await system(
        manifests(
            broker_doc(),
            trigger_doc("keep", f"{subscriber.url}/keep"),
            trigger_doc("slow", f"{subscriber.url}/slow", delivery=slow_delivery),
        ),
        watch=True,
    )
    broker = running.system.brokers[f"{NAMESPACE}/default"]
    async with aiohttp.ClientSession() as http:
        olds = [f"old-{n}" for n in range(4)]
        for event_id in olds:
            await send(http, running, event_id)
        await subscriber.wait_for(lambda rs: set(olds) <= set(subscriber.ids("/slow")))
        await _apply(running, tmp_path, _without("slow"),
                     lambda: trigger_key("slow") not in running.system.triggers)  # fmt: skip
        await _assert_released(broker, trigger_key("slow"))
        again = trigger_doc("slow", f"{subscriber.url}/again")
        await _apply(running, tmp_path, _plus(again),
                     lambda: trigger_key("slow") in running.system.triggers)  # fmt: skip
        await _until_delivering(http, running, subscriber, "/again")
        await send(http, running, "new")
        await subscriber.wait_for(lambda rs: "new" in subscriber.ids("/again"))
        await subscriber.wait_for(lambda rs: set(olds) <= set(subscriber.ids("/keep")))
    await settled(running)
    assert not set(olds) & set(subscriber.ids("/again"))


async def _assert_released(broker: Any, trigger: str) -> None:
    """What each class keeps of a trigger's backlog is gone."""
    if broker.broker_class in ("Embedded", "InMemory"):
        assert broker.store.pending_count(trigger) == 0
    elif broker.broker_class == "Kafka":
        group = broker.settings.group(trigger)
        assert await broker.admin.list_consumer_group_offsets(group) == {}
    else:
        from aio_pika.exceptions import ChannelClosed

        assert broker.connection is not None
        channel = await broker.connection.channel()
        with pytest.raises(ChannelClosed):
            await channel.declare_queue(broker.settings.queue(trigger), passive=True)


async def test_trigger_refiltered_and_retargeted_while_running(
    system: SystemFactory, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    running = await system(
        manifests(
            broker_doc(),
            trigger_doc("t", f"{subscriber.url}/x", filters=[{"exact": {"type": "a"}}]),
        ),
        watch=True,
    )
    async with aiohttp.ClientSession() as http:
        await send(http, running, "a1", "a")
        await subscriber.wait_for(lambda rs: "a1" in subscriber.ids("/x"))
        changed = trigger_doc("t", f"{subscriber.url}/y", filters=[{"exact": {"type": "b"}}])
        await _apply(
            running,
            tmp_path,
            lambda docs: [*_without("t")(docs), changed],
            lambda: running.system.triggers[trigger_key("t")].sink.target.endswith("/y"),
        )
        for n in range(200):  # a RabbitMQ binding moves with the filter: wait for it
            await send(http, running, f"b-probe-{n}", "b")
            with contextlib.suppress(TimeoutError):
                await subscriber.wait_count(1, "/y", timeout=0.5)
                break
        await send(http, running, "a2", "a")
        await send(http, running, "b1", "b")
        await subscriber.wait_for(lambda rs: "b1" in subscriber.ids("/y"))
    await settled(running)
    assert "a2" not in subscriber.ids()
    assert subscriber.ids("/x") == ["a1"]
