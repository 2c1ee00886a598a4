"""The per-host connection limit shared by the dispatchers: waiters (coroutines and
dispatcher wake-ups) are served in order as slots free up, one slot per turn, and
nobody takes a freed slot ahead of those already waiting."""

from __future__ import annotations

import asyncio

import pytest

from sinks.hostslots import HostSlots, NoSlotError

KEY = ("127.0.0.1", 80)


async def _turn() -> None:
    """Let the drain scheduled by a release run (it is one call_soon away)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_waiters_are_served_in_order_one_slot_per_turn() -> None:
    slots = HostSlots(2)
    assert slots.take(KEY)
    assert slots.take(KEY)
    assert not slots.take(KEY)
    order: list[str] = []

    def dispatcher(name: str, wants: int) -> None:
        left = [wants]

        def wake() -> None:
            order.append(name)
            while left[0] and slots.take(KEY):
                left[0] -= 1
            if left[0]:
                assert slots.when_free(KEY, wake)

        assert slots.when_free(KEY, wake)

    dispatcher("a", 2)
    loop = asyncio.get_running_loop()
    coroutine = loop.create_task(slots.acquire(KEY, loop.time() + 30))
    await asyncio.sleep(0)  # it queues behind a
    dispatcher("b", 1)
    await _turn()
    assert order == []
    slots.release(KEY)
    assert not slots.take(KEY)  # a newcomer waits behind the queue
    await _turn()
    assert order == ["a"]  # one slot: a takes it and queues again for its second
    slots.release(KEY)
    await _turn()
    assert coroutine.done()  # then the coroutine, in turn
    await coroutine
    slots.release(KEY)
    await _turn()
    assert order == ["a", "b"]
    slots.release(KEY)
    await _turn()
    assert order == ["a", "b", "a"]
    assert slots.busy[KEY] == 2
    slots.release(KEY)
    assert slots.take(KEY)  # nobody waits: a newcomer takes it at once


async def test_a_wake_that_takes_nothing_passes_the_slot_on() -> None:
    slots = HostSlots(1)
    assert slots.take(KEY)
    called: list[str] = []

    def taker() -> None:
        called.append("taker")
        assert slots.take(KEY)

    assert slots.when_free(KEY, lambda: called.append("idle"))
    assert slots.when_free(KEY, taker)
    slots.release(KEY)
    await _turn()
    assert called == ["idle", "taker"]
    assert slots.busy[KEY] == 1


async def test_a_wait_cut_short_gives_its_place_or_its_slot_back() -> None:
    slots = HostSlots(1)
    assert slots.take(KEY)
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await slots.acquire(KEY, loop.time() + 0.01)
    assert slots.busy[KEY] == 1
    assert slots.full(KEY)  # nobody left queued: full only because the slot is taken
    slots.release(KEY)
    assert slots.take(KEY)
    waiter = loop.create_task(slots.acquire(KEY, loop.time() + 30))
    await _turn()
    slots.release(KEY)  # handed to the waiter, which is cancelled before it runs
    await asyncio.sleep(0)
    assert slots.busy[KEY] == 1  # the drain handed the slot to the waiter...
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.busy[KEY] == 0  # ...which gave it back as it was cancelled
    assert slots.take(KEY)


async def test_stop_queueing_ends_every_wait_at_once() -> None:
    slots = HostSlots(1)
    assert slots.take(KEY)
    loop = asyncio.get_running_loop()
    waiters = [loop.create_task(slots.acquire(KEY, loop.time() + 30)) for _ in range(50)]
    woken: list[int] = []
    assert slots.when_free(KEY, lambda: woken.append(1))
    await _turn()
    slots.stop_queueing()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, NoSlotError) for r in results)
    assert not slots.when_free(KEY, lambda: woken.append(2))  # nothing queues now
    slots.release(KEY)
    await _turn()
    assert woken == []
