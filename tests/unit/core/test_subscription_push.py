"""A store subscription that pushes (the dispatcher's pump takes events waiting in
memory with take_nowait, its run loop the rest with get): whatever the mix of the
two, across the switches between memory and paging from disk, every event is handed
out once, in order, and none is skipped."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.events import Event


def event(n: int) -> Event:
    return Event({"specversion": "1.0", "id": f"e{n}", "source": "/s", "type": "t"}, b"x")


@pytest.mark.parametrize("rest", [False, True], ids=["get", "get+rest"])
@pytest.mark.parametrize("counted", [False, True], ids=["drained", "counted"])
async def test_pushed_and_pulled_events_come_once_in_order(
    tmp_path: Path, counted: bool, rest: bool
) -> None:
    """``counted``: as the dispatcher's pump takes them, in a later loop turn and no
    more than it was offered (one per call of ``ready``), stopping at the first None;
    else every call of ``ready`` takes all there are at once. ``rest``: as the
    dispatcher's run loop, after each ``get`` the puller takes what ``take_nowait``
    has (the rest of a page read from disk), up to a random number of places."""
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    broker = EmbeddedBroker("ns/b", "Embedded", SharedStore(store))
    sub = broker.subscribe("a", lambda attrs: None)
    sub._limit_events = 8  # small: it spills to disk often
    seen: list[tuple[int, str]] = []  # (seq, id) in the order handed out
    progress = asyncio.Event()

    def record(got: Event) -> None:
        seen.append((got.seq, got.id))
        progress.set()

    pushes = 0
    total = 0

    offers = 0

    def take_offered() -> None:
        nonlocal offers
        while offers > 0:
            delivery = sub.take_nowait()
            if delivery is None:
                offers = 0
                return
            offers -= 1
            record(delivery.event)

    def ready() -> None:
        nonlocal pushes, offers
        pushes += 1
        if counted:
            offers += 1
            if offers == 1:
                asyncio.get_running_loop().call_soon(take_offered)
            return
        while (delivery := sub.take_nowait()) is not None:
            record(delivery.event)

    assert sub.push_to(ready)

    places = random.Random(8)

    async def pull() -> None:
        while True:
            record((await sub.get()).event)
            if rest:
                for _ in range(places.randint(0, 40)):
                    delivery = sub.take_nowait()
                    if delivery is None:
                        break
                    record(delivery.event)
            await asyncio.sleep(0)

    real_load = store.load_pending
    extra = 0

    async def load_pending(trigger: str, after_seq: int, limit: int) -> list[Event]:
        # A commit landing while the subscription pages from disk (its events are
        # offered in memory meanwhile): they must not overtake the page.
        nonlocal extra, total
        page = await real_load(trigger, after_seq, limit)
        if extra < 40:
            extra += 1
            total += 1
            await broker.publish([event(total - 1)])
        return page

    store.load_pending = load_pending  # type: ignore[method-assign]
    await broker.open()
    puller = asyncio.create_task(pull())
    rng = random.Random(14)
    try:
        for _ in range(80):
            size = rng.randint(1, 20)
            first, total = total, total + size
            await broker.publish([event(first + k) for k in range(size)])
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
        async with asyncio.timeout(30):
            while len(seen) < total:
                progress.clear()
                await progress.wait()
    finally:
        puller.cancel()
        await asyncio.gather(puller, return_exceptions=True)
        await broker.close()
    seqs = [seq for seq, _ in seen]
    assert seqs == sorted(seqs)  # in stored order, none twice
    assert len(seqs) == len(set(seqs))
    assert sorted(i for _, i in seen) == sorted(f"e{n}" for n in range(total))  # none skipped
    assert pushes > 0  # some came by the push path


async def test_the_rest_of_a_page_is_taken_without_get(tmp_path: Path) -> None:
    """In spill mode one ``get`` reads a page from the store; ``take_nowait`` hands
    out the rest of it in order, then None (not an event offered meanwhile, which is
    on disk after the page), and the next ``get`` reads on from the cursor."""
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    broker = EmbeddedBroker("ns/b", "Embedded", SharedStore(store))
    sub = broker.subscribe("a", lambda attrs: None)
    sub._limit_events = 4
    assert sub.push_to(lambda: None)
    await broker.open()
    try:
        count = 700  # more than two pages of 256
        await broker.publish([event(n) for n in range(count)])
        first = await sub.get()
        page = [first.event.id]
        while (delivery := sub.take_nowait()) is not None:
            page.append(delivery.event.id)
        assert page == [f"e{n}" for n in range(256)]
        await broker.publish([event(count)])  # offered while spilling: read from disk
        assert sub.take_nowait() is None
        ids: list[str] = []
        while len(ids) < count + 1 - 256:
            ids.append((await sub.get()).event.id)
            while (delivery := sub.take_nowait()) is not None:
                ids.append(delivery.event.id)
        assert ids == [f"e{n}" for n in range(256, count + 1)]
        for n in range(count + 1):
            sub.ack(n + 1)
    finally:
        await broker.close()
