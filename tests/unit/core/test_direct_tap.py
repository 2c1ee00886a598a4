"""A direct publisher's stored events are told to the main process once per loop turn
(one tap frame for all the requests answered in it), and only once stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from eventing.errors import StoreError
from eventing.events import Event
from eventing.ingress import direct
from eventing.ingress.direct import Done, Tapped


class Answering:
    """Answers every publish_soon of a loop turn in the next one, like a batch."""

    key = "ns/b"
    ready = True

    def __init__(self) -> None:
        self.refuse: set[str] = set()

    async def start(self) -> None:
        pass

    async def close(self, timeout: float = 5.0) -> None:
        pass

    async def publish(self, events: Sequence[Event]) -> None:
        pass

    def publish_soon(self, events: Sequence[Event], done: Done) -> None:
        error = StoreError("no") if events[0].id in self.refuse else None
        asyncio.get_running_loop().call_soon(done, error)


def event(i: int) -> Event:
    return Event({"specversion": "1.0", "id": str(i), "source": "/s", "type": "t"}, b"")


async def test_one_frame_per_loop_turn_of_answers() -> None:
    told: list[tuple[str, list[str]]] = []
    inner = Answering()
    inner.refuse.add("3")
    tapped = Tapped(inner, lambda key, events: told.append((key, [e.id for e in events])))
    answers: list[StoreError | None] = []
    for i in range(5):
        tapped.publish_soon([event(i)], answers.append)
    await asyncio.sleep(0)  # the answers' turn
    await asyncio.sleep(0)  # the tell's turn
    assert [a is None for a in answers] == [True, True, True, False, True]
    assert told == [("ns/b", ["0", "1", "2", "4"])]  # one frame, the refused one not in it
    await tapped.publish([event(9)])
    await asyncio.sleep(0)
    assert told[1:] == [("ns/b", ["9"])]


async def test_a_frame_holds_at_most_tell_at_most_events() -> None:
    told: list[int] = []
    tapped = Tapped(Answering(), lambda key, events: told.append(len(events)))
    direct_limit = direct.TELL_AT_MOST
    for i in range(direct_limit + 10):
        await tapped.publish([event(i)])
    await asyncio.sleep(0)
    assert told == [direct_limit, 10]
