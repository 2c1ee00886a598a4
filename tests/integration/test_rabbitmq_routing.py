"""The RabbitMQ class counts its publish-time drops and detects missing queues through
the trigger index (eventing/broker/index.py) instead of asking every trigger's filter:
against the real server, the drops are those of the linear scan over the *attached*
triggers (a trigger joins when its queue is first bound), a refiltered trigger is
routed by its new filter, an unsubscribed one by none, and a message a trigger wants
whose queue is gone is refused."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from brokers.rabbitmq.broker import RabbitBroker
from brokers.rabbitmq.config import read_settings
from eventing.broker.base import Filter
from eventing.broker.routing import count, route
from eventing.errors import StoreError
from eventing.events import Event
from eventing.resources.trigger import TriggerSpec
from tests.integration.support import AMQP_URL, unique
from tests.support.broker_classes import Created, cleanup
from triggers.materialize import materialize

pytestmark = pytest.mark.integration

TRIGGERS = 12


def _filter(spec_filters: list[dict[str, object]]) -> Filter:
    spec = {"broker": "b", "subscriber": {"uri": "http://h/"}, "filters": spec_filters}
    return materialize(TriggerSpec.model_validate(spec))


def _exact(i: int) -> Filter:
    return _filter([{"exact": {"type": f"rt.{i}"}}])


def _events(first: int, count_: int) -> list[Event]:
    # Every trigger's type, some twice, and types nobody takes.
    return [
        Event(
            {"specversion": "1.0", "id": f"r{n}", "source": "/rt", "type": f"rt.{n % 15}"},
            b"{}",
        )
        for n in range(first, first + count_)
    ]


def _linear(filters: Mapping[str, Filter], events: list[Event]) -> dict[tuple[str, str], int]:
    drops: dict[tuple[str, str], int] = {}
    for e in events:
        count(drops, route(filters, e)[1])
    return drops


async def test_publish_routes_through_the_index_over_attached_triggers() -> None:
    exchange = unique("eventing-route")
    settings, problems = read_settings("ns/b", {"url": AMQP_URL, "exchange": exchange})
    assert not problems
    broker = RabbitBroker("ns/b", "RabbitMQBroker", settings, "test")
    created = Created(rabbit_exchanges=[exchange])
    filters = {f"ns/t{i}": _exact(i) for i in range(TRIGGERS)}
    for i in range(TRIGGERS):  # bound by type, as exact_attributes() gives it
        broker.subscribe(f"ns/t{i}", filters[f"ns/t{i}"], {"type": f"rt.{i}"})
    try:
        await broker.open()  # connects: every queue bound, every trigger routed
        first = _events(0, 60)
        await broker.publish(first)
        assert dict(broker.drops()) == _linear(filters, first)

        # Added while running: not routed until its queue is bound (its bind task).
        broker.subscribe("ns/late", _exact(13), {"type": "rt.13"})
        more = _events(60, 30)
        await broker.publish(more)
        expected = _linear(filters, first + more)
        assert dict(broker.drops()) == expected
        late = broker.subscriptions["ns/late"]
        assert broker.connection is not None
        assert broker.exchange is not None
        await late.attach(broker.connection, broker.exchange, broker.generation)

        # Refiltered: the new filter decides; unsubscribed: counted no more.
        await broker.refilter("ns/t0", _exact(14), {"type": "rt.14"})
        await broker.unsubscribe("ns/t1")
        after = _events(90, 45)
        await broker.publish(after)
        now = dict(filters)
        now["ns/late"] = _exact(13)
        now["ns/t0"] = _exact(14)
        del now["ns/t1"]
        for key, n in _linear(now, after).items():
            expected[key] = expected.get(key, 0) + n
        assert dict(broker.drops()) == expected

        # A queue deleted under a trigger that wants the message: refused.
        assert broker.channel is not None
        await broker.subscriptions["ns/t2"].detach()
        await broker.channel.queue_delete(broker.subscriptions["ns/t2"].queue_name)
        with pytest.raises(StoreError, match="missing"):
            await broker.publish(_events(1502, 1))  # type rt.2, an id not seen yet
        assert dict(broker.drops()) == expected  # a refused batch counts nothing
    finally:
        await broker.close()
        await cleanup(created)
