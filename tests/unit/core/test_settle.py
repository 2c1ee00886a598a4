"""A start cut short by a cancellation is let finish, so cleanup reaches what it opened."""

from __future__ import annotations

import asyncio

import pytest

from eventing.settle import uncut


async def test_a_cancelled_start_finishes_before_the_cancellation_goes_on() -> None:
    opened = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def start() -> str:
        opened.set()
        await release.wait()
        finished.append("connection kept")
        return "started"

    caller = asyncio.create_task(uncut(start()))
    await opened.wait()
    caller.cancel()
    await asyncio.sleep(0)
    assert not caller.done()  # still waiting for the start, not cut short
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished == ["connection kept"]


async def test_a_start_that_outlasts_the_bound_is_cancelled_too() -> None:
    opened = asyncio.Event()
    cancelled: list[bool] = []

    async def start() -> None:
        opened.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    caller = asyncio.create_task(uncut(start(), settle=0.01))
    await opened.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert cancelled == [True]


async def test_a_failed_start_still_raises_its_error() -> None:
    async def start() -> None:
        raise OSError("refused")

    with pytest.raises(OSError, match="refused"):
        await uncut(start())


async def test_a_start_is_awaited_normally() -> None:
    async def start() -> int:
        return 7

    assert await uncut(start()) == 7
