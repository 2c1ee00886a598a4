"""The loop's pump round: the dispatchers with events waiting are pumped in one loop
callback per turn (not a callback each), in the order they asked, and a pump that asks
again while the round runs is pumped in the next turn."""

from __future__ import annotations

import asyncio
import logging

import pytest

from eventing.delivery.pumps import PumpRound, pump_round


async def wait_until(done: asyncio.Event) -> None:
    async with asyncio.timeout(5):
        await done.wait()


async def test_pumps_of_one_turn_run_in_one_callback_in_order() -> None:
    loop = asyncio.get_running_loop()
    pumps = PumpRound(loop)
    order: list[str] = []
    finished = asyncio.Event()
    pumps.add(lambda: order.append("a"))
    # A callback queued between two registrations: with a callback per pump it would
    # run between them; with one round it runs after both.
    loop.call_soon(order.append, "between")
    pumps.add(lambda: order.append("b"))
    pumps.add(lambda: order.append("c"))
    loop.call_soon(finished.set)
    await wait_until(finished)
    assert order == ["a", "b", "c", "between"]


async def test_a_pump_added_during_the_round_runs_in_the_next_turn() -> None:
    loop = asyncio.get_running_loop()
    pumps = PumpRound(loop)
    order: list[str] = []
    finished = asyncio.Event()

    def again() -> None:
        order.append("again")
        finished.set()

    def first() -> None:
        order.append("first")
        loop.call_soon(order.append, "queued in the round")
        pumps.add(again)  # not run in this round: after what was queued before it

    pumps.add(first)
    await wait_until(finished)
    assert order == ["first", "queued in the round", "again"]


async def test_a_failing_pump_does_not_starve_the_others(caplog: pytest.LogCaptureFixture) -> None:
    pumps = PumpRound(asyncio.get_running_loop())
    finished = asyncio.Event()

    def broken() -> None:
        raise RuntimeError("boom")

    pumps.add(broken)
    pumps.add(finished.set)
    with caplog.at_level(logging.ERROR, logger="eventing.delivery.pumps"):
        await wait_until(finished)
    assert "pump failed" in caplog.text


async def test_one_round_per_loop() -> None:
    loop = asyncio.get_running_loop()
    assert pump_round(loop) is pump_round(loop)
    other = asyncio.new_event_loop()
    try:
        assert pump_round(other) is not pump_round(loop)
    finally:
        other.close()
