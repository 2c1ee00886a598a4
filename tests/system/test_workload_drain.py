"""Scale-in never cuts work short: real subprocess replicas whose events take longer
than the termination grace period finish them; only past ``maxDrainSeconds`` is a busy
replica stopped, and then its events are counted as redelivered with the reason; a
draining replica is taken back when the count goes up again."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from eventing.autoscaler.scalein import DRAIN_LIMIT_REASON
from eventing.workloads.guardian import Guardian
from eventing.workloads.pool import ReplicaPool
from eventing.workloads.replica import Replica, ReplicaConfig
from tests.support.mesh import wait_until

REPLICA = str(Path(__file__).resolve().parents[1] / "support" / "replica_app.py")


@pytest.fixture
async def guardian() -> AsyncIterator[Guardian]:
    g = Guardian()
    await g.start()
    yield g
    await g.close()


async def busy_pool(
    guardian: Guardian, replicas: int, work: float, max_drain: float = 3600.0
) -> tuple[ReplicaPool, list[Replica]]:
    config = ReplicaConfig(
        workload="drain",
        command=[sys.executable, REPLICA],
        env={"WORK_SECONDS": str(work)},
        grace_period=0.2,  # far shorter than the work: it must not matter
        max_drain=max_drain,
    )
    pool = ReplicaPool(config, concurrency=1, guardian=guardian)
    pool.scale_to(replicas)
    await wait_until(lambda: pool.ready_count() == replicas, 60, f"{replicas} ready replicas")
    leased = [await pool.acquire() for _ in range(replicas)]
    return pool, leased


async def post(http: aiohttp.ClientSession, pool: ReplicaPool, replica: Replica) -> int | None:
    try:
        async with http.post(f"http://127.0.0.1:{replica.port}/", data=b"{}") as r:
            return r.status
    except aiohttp.ClientError:
        return None
    finally:
        await pool.release(replica)


async def test_busy_replicas_finish_their_work_past_the_grace_period(guardian: Guardian) -> None:
    pool, leased = await busy_pool(guardian, 2, work=1.5)
    try:
        async with aiohttp.ClientSession() as http:
            requests = [asyncio.create_task(post(http, pool, r)) for r in leased]
            pool.scale_to(0)
            assert pool.count("draining") == 2
            assert await asyncio.gather(*requests) == [202, 202]
        await wait_until(lambda: not pool.replicas, 30, "drained replicas stopped")
        assert pool.redelivered == {}
        assert all(r.stopped_busy == 0 for r in leased)
    finally:
        await pool.close()


async def test_past_max_drain_a_busy_replica_is_stopped_and_counted(guardian: Guardian) -> None:
    pool, leased = await busy_pool(guardian, 1, work=60, max_drain=0.3)
    try:
        async with aiohttp.ClientSession() as http:
            request = asyncio.create_task(post(http, pool, leased[0]))
            pool.scale_to(0)
            status = await asyncio.wait_for(request, 30)
        assert status is None  # the replica was stopped with the event in flight
        await wait_until(lambda: not pool.replicas, 30, "the replica stopped")
        assert pool.redelivered == {DRAIN_LIMIT_REASON: 1}
        assert leased[0].stopped_busy == 1
    finally:
        await pool.close()


async def test_a_draining_replica_is_revived_instead_of_starting_another(
    guardian: Guardian,
) -> None:
    pool, leased = await busy_pool(guardian, 2, work=1.0)
    try:
        async with aiohttp.ClientSession() as http:
            requests = [asyncio.create_task(post(http, pool, r)) for r in leased]
            pool.scale_to(1)
            assert pool.count("draining") == 1
            pool.scale_to(2)
            assert pool.revived == 1
            assert pool.count("draining") == 0
            assert pool.count("starting") == 0
            assert await asyncio.gather(*requests) == [202, 202]
        assert sorted(r.number for r in pool.replicas) == [1, 2]
        assert pool.count("ready") == 2
    finally:
        await pool.close()
