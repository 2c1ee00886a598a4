"""One ``eventing run`` per data directory, as a user meets it: a second process on the
same directory stops at start with a message saying why, before it opens the store;
and a ``kill -9`` of the first leaves no stale lock behind (the kernel drops a dead
process's ``flock``), so a restart after a crash needs no manual clean-up."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.support.process import EventingProcess, reaped, run_command

pytestmark = pytest.mark.e2e


def manifests(tmp_path: Path) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "broker.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"
    )
    return directory


async def second_run(directory: Path, data_dir: Path) -> tuple[int, str]:
    """``eventing run`` on ``data_dir``: its exit status and output."""
    proc = await asyncio.create_subprocess_exec(
        *run_command(directory, data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    async with reaped(proc):
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_a_second_run_on_one_data_dir_is_refused_and_a_crash_leaves_no_lock(
    tmp_path: Path,
) -> None:
    directory, data_dir = manifests(tmp_path), tmp_path / "data"
    first = EventingProcess(directory, data_dir)
    await first.start()
    try:
        code, output = await second_run(directory, data_dir)
        assert code != 0
        assert "another eventing process is using the data directory" in output
        assert "Traceback" not in output
        assert first.proc is not None
        assert first.proc.returncode is None  # the first one runs on, untouched
    finally:
        await first.kill()  # kill -9: the lock goes with the process
    again = EventingProcess(directory, data_dir)
    await again.start()
    assert await again.terminate(30) == 0
