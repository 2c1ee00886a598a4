"""The KafkaSource's background committer: one commit at a time, later offsets merged,
failures surface on the next call, flush waits for everything handed over."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from sources.kafka.commits import Committer


class FakeCoordinator:
    def __init__(self) -> None:
        self.commits: list[dict[Hashable, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def commit(self, offsets: dict[Hashable, int]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.fail is not None:
                raise self.fail
            self.commits.append(dict(offsets))
        finally:
            self.in_flight -= 1


async def test_one_commit_at_a_time_and_what_came_meanwhile_is_merged() -> None:
    coordinator = FakeCoordinator()
    coordinator.gate.clear()
    committer = Committer(coordinator.commit, "test")
    committer.add({"p0": 10})
    await asyncio.sleep(0)  # the first commit is in flight, held
    committer.add({"p0": 20, "p1": 5})
    committer.add({"p0": 30})
    assert committer.pending()
    coordinator.gate.set()
    await committer.flush()
    assert coordinator.commits == [{"p0": 10}, {"p0": 30, "p1": 5}]
    assert coordinator.most_in_flight == 1
    assert not committer.pending()


async def test_a_failed_commit_is_raised_by_the_next_call_and_forgotten() -> None:
    coordinator = FakeCoordinator()
    coordinator.fail = RuntimeError("coordinator gone")
    committer = Committer(coordinator.commit, "test")
    committer.add({"p0": 10})
    with pytest.raises(RuntimeError, match="coordinator gone"):
        await committer.flush()
    coordinator.fail = None
    committer.add({"p0": 20})  # a new session's offsets: committed normally
    await committer.flush()
    assert coordinator.commits == [{"p0": 20}]


async def test_add_raises_an_earlier_failure_before_taking_more() -> None:
    coordinator = FakeCoordinator()
    coordinator.fail = RuntimeError("no")
    committer = Committer(coordinator.commit, "test")
    committer.add({"p0": 1})
    async with asyncio.timeout(5):  # until the failing commit has ended
        while committer.pending():  # noqa: ASYNC110 - the task under test
            await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        committer.add({"p0": 2})
    await committer.close()


async def test_close_stops_a_commit_in_flight_and_drops_the_rest() -> None:
    coordinator = FakeCoordinator()
    coordinator.gate.clear()
    committer = Committer(coordinator.commit, "test")
    committer.add({"p0": 1})
    await asyncio.sleep(0)
    committer.add({"p0": 2})
    await committer.close()
    assert coordinator.commits == []
    assert not committer.pending()


async def test_commits_wait_for_the_interval_unless_flushed() -> None:
    coordinator = FakeCoordinator()
    committer = Committer(coordinator.commit, "test", interval=3600.0)
    committer.add({"p0": 1})
    async with asyncio.timeout(5):  # the first commit goes at once
        while not coordinator.commits:  # noqa: ASYNC110 - the task under test
            await asyncio.sleep(0)
    committer.add({"p0": 2})
    committer.add({"p0": 3})
    for _ in range(10):
        await asyncio.sleep(0)
    assert coordinator.commits == [{"p0": 1}]  # the rest waits for the interval
    assert committer.pending()
    await committer.flush()  # ... or for a flush
    assert coordinator.commits == [{"p0": 1}, {"p0": 3}]
    assert not committer.pending()
    await committer.close()
