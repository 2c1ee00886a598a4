"""Plain POSTs to a broker with ``eventing.local/dedup-ingress: "true"``, on every
broker class: the same (source, id) posted twice is answered 202 both times, stored
and delivered once, and counted as a ``duplicate`` drop; the same id from another
source, or another id with the same body, is not a duplicate. Without the
annotation (the default, as Knative) both copies are delivered. A dead letter
replayed is delivered again: replay puts it back in its trigger's backlog and is
never taken for a duplicate of itself."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import SystemFactory
from tests.support.broker_classes import params
from tests.support.mesh import (
    admin_json,
    broker_doc,
    broker_url,
    ce_headers,
    manifests,
    post,
    settled,
    trigger_doc,
    wait_until,
)
from tests.support.subscriber import Answer, Received, RecordingSubscriber


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_class" in metafunc.fixturenames:
        metafunc.parametrize("broker_class", params(), indirect=True)


def system_yaml(url: str, dedup_ingress: bool) -> str:
    broker = broker_doc()
    if dedup_ingress:
        broker["metadata"]["annotations"] = {"eventing.local/dedup-ingress": "true"}
    return manifests(broker, trigger_doc("all", url + "/all"))


async def test_plain_posts_are_deduplicated_when_the_broker_says_so(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(system_yaml(subscriber.url, dedup_ingress=True))
    url = broker_url(running)
    async with aiohttp.ClientSession() as http:
        for id_, source in (("a", "/one"), ("a", "/one"), ("a", "/two"), ("b", "/one")):
            status, _ = await post(http, url, ce_headers(id_, source=source), b"same")
            assert status == 202
    await subscriber.wait_count(3)
    await settled(running)
    received = sorted((e.source, e.id) for e in subscriber.events())
    assert received == [("/one", "a"), ("/one", "b"), ("/two", "a")]
    (broker,) = running.system.brokers.values()
    assert broker.drops().get(("", "duplicate")) == 1


async def test_plain_posts_are_not_deduplicated_by_default(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(system_yaml(subscriber.url, dedup_ingress=False))
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            status, _ = await post(http, broker_url(running), ce_headers("a"), b"x")
            assert status == 202
    await subscriber.wait_count(2)
    (broker,) = running.system.brokers.values()
    assert ("", "duplicate") not in broker.drops()


async def test_a_replayed_dead_letter_is_not_a_duplicate(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    broker = broker_doc()
    broker["metadata"]["annotations"] = {"eventing.local/dedup-ingress": "true"}
    delivery = {"retry": 0, "deadLetterSink": {"uri": "dlq:"}}
    running = await system(
        manifests(broker, trigger_doc("t", subscriber.url + "/t", delivery=delivery))
    )
    answers = iter([500])

    def first_fails(_received: Received, _count: int) -> Answer:
        return Answer(next(answers, 202))

    subscriber.responder = first_fails
    (queue,) = (b.dead_letters for b in running.system.brokers.values())
    assert queue is not None
    async with aiohttp.ClientSession() as http:
        status, _ = await post(http, broker_url(running), ce_headers("once"), b"x")
        assert status == 202
        await wait_until(lambda: sum(queue.depths().values()) == 1, what="the dead letter")
        status, listing = await admin_json(http, running, "/v1/dlq")
        [item] = listing["items"]
        status, replayed = await admin_json(http, running, "/v1/dlq/replay", {"ids": [item["id"]]})
        assert replayed["replayed"] == [item["id"]]
    await subscriber.wait_count(2)
    await settled(running)
    assert [e.id for e in subscriber.events()] == ["once", "once"]
    (one,) = running.system.brokers.values()
    assert ("", "duplicate") not in one.drops()
