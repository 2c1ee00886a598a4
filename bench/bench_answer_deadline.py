"""Micro-benchmark (not a test): what an answer deadline costs per request in the
ingress worker's IPC channel, as it was (``asyncio.timeout`` around the wait and
``asyncio.get_running_loop()`` per request, which is a ``getpid`` system call on
Python 3.11) against as it is (a deadline in a dict, checked by a 50 ms sweep, and the
loop looked up once). Both wait for a future answered on the next loop iteration.

    .venv/bin/python bench/bench_answer_deadline.py [--requests 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time


async def run(n: int) -> None:
    loop = asyncio.get_running_loop()
    deadlines: dict[int, float] = {}

    async def with_timeout(_: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        loop.call_soon(future.set_result, 1)
        async with asyncio.timeout(30):
            return await future

    async def with_sweep(i: int) -> int:
        future: asyncio.Future[int] = loop.create_future()
        deadlines[i] = loop.time() + 30
        loop.call_soon(future.set_result, 1)
        try:
            return await future
        finally:
            deadlines.pop(i, None)

    results: dict[str, list[float]] = {"timeout": [], "sweep": []}
    for _ in range(3):  # alternated
        for name, request in (("timeout", with_timeout), ("sweep", with_sweep)):
            started = time.process_time()
            for i in range(n):
                await request(i)
            results[name].append((time.process_time() - started) / n * 1e6)
    before, after = min(results["timeout"]), min(results["sweep"])
    print(f"\nCPU per request, best of 3 alternated rounds of {n:,} (microseconds)\n")
    print(f"asyncio.timeout + get_running_loop() (before) {before:6.2f}")
    print(f"deadline dict + sweep, loop cached (after)     {after:6.2f}")
    print(f"\nsaved {before - after:.2f} µs per request; ratio after / before {after / before:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(run(args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
