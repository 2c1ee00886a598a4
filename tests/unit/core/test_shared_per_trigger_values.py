"""Values every trigger reads per event are shared between triggers that have equal
ones (a thousand triggers of one delivery spec to one subscriber read one policy and
one target, not a thousand copies), and the adaptive limit keeps working without a
waiter queue until something waits."""

from __future__ import annotations

import asyncio

import aiohttp

from eventing.delivery.limiter import AdaptiveLimit
from eventing.delivery.policy import RetryPolicy, shared
from sinks.http import HttpSink
from sinks.httpclient import Pool


def test_equal_policies_are_one_object_and_different_ones_stay_apart() -> None:
    a = shared(RetryPolicy(retry=3, max_in_flight=10))
    b = shared(RetryPolicy(retry=3, max_in_flight=10))
    c = shared(RetryPolicy(retry=4, max_in_flight=10))
    assert a is b
    assert c == RetryPolicy(retry=4, max_in_flight=10)
    assert c is not a


async def test_sinks_to_one_url_share_their_target_and_its_pool_key() -> None:
    pool = Pool()
    async with aiohttp.ClientSession() as session:
        one = HttpSink("http://127.0.0.1:9/events", pool, session)
        two = HttpSink("http://127.0.0.1:9/events", pool, session)
        other = HttpSink("http://127.0.0.1:9/other", pool, session)
        secret = HttpSink("http://user:pw@127.0.0.1:9/events", pool, session)
    assert one._plain is not None
    assert one._plain is two._plain
    assert one._plain.key == ("127.0.0.1", 9)
    assert other._plain is not one._plain  # another path
    assert secret._plain is not one._plain  # its Authorization line is its own
    assert secret._plain is not None
    assert b"Authorization: Basic" in secret._plain.start


async def test_the_limit_queues_waiters_only_once_something_waits() -> None:
    limit = AdaptiveLimit(1)
    assert limit.try_acquire()
    limit.release()  # nobody waits: nothing to wake
    await limit.acquire()
    waiter = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert not limit.try_acquire()  # one waits: no newcomer goes first
    limit.release()
    await asyncio.wait_for(waiter, 5)
    assert limit.in_use == 1
    cancelled = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    limit.release()
    assert limit.in_use == 0
    assert limit.try_acquire()
