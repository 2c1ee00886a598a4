"""``eventing run`` as a real subprocess, as a user runs it: start it on free ports,
read where it listens from what it prints, kill it or stop it with a signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

_BROKER_LINE = re.compile(r"broker (\S+) .*: POST (http://\S+)")
_ADMIN_LINE = re.compile(r"admin API (http://[0-9.:]+)")


#: Every process started by a test, so a failing test cannot leave one running.
STARTED: list[asyncio.subprocess.Process] = []


@contextlib.asynccontextmanager
async def reaped(proc: asyncio.subprocess.Process) -> AsyncIterator[asyncio.subprocess.Process]:
    """Kill and reap ``proc`` if the block leaves while it still runs (a failed
    assertion, a timeout), so a test leaves no child behind."""
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a zombie (exited, not yet reaped by its parent) is
    not a running orphan."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


async def post_events(url: str, ids: list[str], type_: str) -> None:
    """Post one binary-mode event per id (body ``{}``) and require 202 for each."""
    async with aiohttp.ClientSession() as http:
        for id_ in ids:
            headers = {"ce-specversion": "1.0", "ce-id": id_, "ce-source": "/t", "ce-type": type_}
            async with http.post(url, data=b"{}", headers=headers) as r:
                assert r.status == 202, (id_, r.status)


def kill_leftovers() -> None:
    """SIGKILL the process group of every started ``eventing run`` still alive."""
    for proc in STARTED:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def run_command(manifests: Path | None, data_dir: Path, *extra: str) -> list[str]:
    """``eventing run`` on free ports (0) with ``data_dir``: the command line."""
    return [
        sys.executable,
        "-m",
        "eventing.app.cli",
        "run",
        *([] if manifests is None else [str(manifests)]),
        "--port",
        "0",
        "--admin-port",
        "0",
        "--data-dir",
        str(data_dir),
        *extra,
    ]


class EventingProcess:
    def __init__(self, manifests: Path | None, data_dir: Path, *extra: str) -> None:
        """``manifests`` None: no directory (``--kubernetes`` reads the API server)."""
        self.manifests = manifests
        self.data_dir = data_dir
        self.extra = extra
        self.proc: asyncio.subprocess.Process | None = None
        self.brokers: dict[str, str] = {}
        self.admin_url = ""
        self.output: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        self.brokers.clear()
        self.proc = await asyncio.create_subprocess_exec(
            *run_command(self.manifests, self.data_dir, *self.extra),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own group: a leftover is killed with its workers
        )
        STARTED.append(self.proc)
        ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read(ready), name="eventing output reader")
        try:
            async with asyncio.timeout(timeout):
                await ready.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError("eventing did not start:\n" + "\n".join(self.output)) from None

    async def _read(self, ready: asyncio.Event) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            if (m := _ADMIN_LINE.search(line)) is not None:
                self.admin_url = m.group(1)
            if (m := _BROKER_LINE.search(line)) is not None:
                self.brokers[m.group(1)] = m.group(2)
                ready.set()

    def admin_token(self) -> str:
        """The admin API's token (``eventing run`` keeps it in the data dir)."""
        return (self.data_dir / "admin.token").read_text().strip()

    def url(self, broker: str = "default/default") -> str:
        return self.brokers[broker]

    async def kill(self) -> None:
        """``kill -9``: no chance to flush or clean up."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.wait(30)

    async def terminate(self, timeout: float) -> int:
        """SIGTERM, then wait up to ``timeout`` for the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
        if self._reader is not None:
            await self._reader
            self._reader = None
        return code
