"""Replicas are started with ``subprocess.Popen`` (vfork) and watched by a pidfd on
the running loop, not by the loop's subprocess machinery (uvloop forks the whole
parent: tens of milliseconds per cold start). What a replica needs from it: its output,
its exit status, its own process group, an OSError for a missing program, on the
default loop and on uvloop, and with the thread fallback where pidfds are missing."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from eventing.workloads.spawn import Child, spawn

SCRIPT = (
    "import os, sys; print('out', os.getpgid(0) == os.getpid()); "
    "print('err', file=sys.stderr); sys.exit(3)"
)


async def _run_child() -> tuple[Child, bytes, bytes, int]:
    child = await spawn([sys.executable, "-c", SCRIPT], env={"PATH": os.environ["PATH"]})
    assert child.stdout is not None
    assert child.stderr is not None
    async with asyncio.timeout(30):
        out, err, code = await asyncio.gather(
            child.stdout.read(), child.stderr.read(), child.wait()
        )
    return child, out, err, code


def _on(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], coro: Coroutine[Any, Any, Any]
) -> Any:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_output_status_and_own_process_group(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    child, out, err, code = _on(loop_factory, _run_child())
    assert out == b"out True\n"  # the leader of a process group of its own
    assert err == b"err\n"
    assert code == 3
    assert child.returncode == 3


def test_without_pidfd_a_thread_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open")
    _, out, _, code = _on(asyncio.new_event_loop, _run_child())
    assert (out, code) == (b"out True\n", 3)


async def test_merged_stderr_and_a_missing_program() -> None:
    child = await spawn(
        [
            sys.executable,
            "-c",
            "import sys; print('a'); sys.stdout.flush(); print('b', file=sys.stderr)",
        ],
        merge_stderr=True,
    )
    assert child.stdout is not None
    assert child.stderr is None
    async with asyncio.timeout(30):
        assert await child.stdout.read() == b"a\nb\n"
        assert await child.wait() == 0
    with pytest.raises(OSError):
        await spawn(["/nonexistent/program"])


def _running_with(marker: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                return True
        except OSError:  # ended meanwhile
            continue
    return False


async def test_cancelled_while_connecting_its_pipes_leaves_no_process() -> None:
    marker = f"spawn-test-{uuid.uuid4()}"
    task = asyncio.create_task(spawn([sys.executable, "-c", "import time; time.sleep(60)", marker]))
    await asyncio.sleep(0)  # its first step: the process exists, the pipes are next
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await asyncio.to_thread(_running_with, marker)
