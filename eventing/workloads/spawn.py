"""Start a child process cheaply from a large event-loop process.

Why not ``asyncio.create_subprocess_exec``: under uvloop (our default loop) it spawns
through libuv, which ``fork()``s the whole address space, so the cost grows with the
parent's memory: 10-35 ms for the main process, paid on every cold start of a replica
(measured in ``bench/bench_activation.py``; docs/benchmarks.md). :class:`subprocess.Popen`
uses ``vfork()`` when it can (no ``preexec_fn``, no user or group change; a new session
is fine), which costs well under a millisecond whatever the parent's size.

The child's exit is watched with a pidfd (Linux ≥ 5.3) registered as a reader on the
running loop, so no thread and no SIGCHLD handler are involved and the loop's own
child watchers never see the pid; elsewhere one daemon thread per child waits for it.
Its output pipes become ordinary :class:`asyncio.StreamReader` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence


class Child:
    """A started process: ``pid``, ``stdout``/``stderr`` readers, ``returncode`` once
    reaped, and :meth:`wait`."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdout: asyncio.StreamReader | None,
        stderr: asyncio.StreamReader | None,
    ) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdout = stdout
        self.stderr = stderr
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        """The exit status once the process ended (shielded: cancelling a waiter does
        not stop the watch)."""
        return await asyncio.shield(self._exited)

    def _reaped(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._watch_in_thread(loop)
            return

        def readable() -> None:
            code = self._popen.poll()
            if code is None:  # spurious wake-up
                return
            loop.remove_reader(fd)
            os.close(fd)
            self._reaped(code)

        loop.add_reader(fd, readable)

    def _watch_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        def wait() -> None:
            code = self._popen.wait()
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._reaped, code)

        threading.Thread(target=wait, name=f"wait {self.pid}", daemon=True).start()


class _PipeProtocol(asyncio.StreamReaderProtocol):
    """Closes its transport at end of file (uvloop keeps a read pipe open when the
    protocol asks to, as StreamReaderProtocol does, and would leave the pipe's file
    object unclosed)."""

    def eof_received(self) -> bool:
        super().eof_received()
        return False


def _same(protocol: _PipeProtocol) -> _PipeProtocol:
    return protocol


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    merge_stderr: bool = False,
) -> Child:
    """Start ``argv`` in a session (and process group) of its own, stdin from
    /dev/null, stdout and stderr each through a pipe read by a StreamReader (or
    stderr into the stdout pipe with ``merge_stderr``). Raises OSError if it cannot
    start. Blocks only until the child has exec'd (vfork)."""
    loop = asyncio.get_running_loop()
    popen = subprocess.Popen(  # noqa: ASYNC220 (vfork: back once the child exec'd)
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        start_new_session=True,
    )
    readers: list[asyncio.StreamReader | None] = []
    transports: list[asyncio.ReadTransport] = []
    pipes = [pipe for pipe in (popen.stdout, popen.stderr) if pipe is not None]
    try:
        for pipe in (popen.stdout, popen.stderr):
            if pipe is None:
                readers.append(None)
                continue
            reader = asyncio.StreamReader(loop=loop)
            protocol = _PipeProtocol(reader, loop=loop)
            transport, _ = await loop.connect_read_pipe(functools.partial(_same, protocol), pipe)
            transports.append(transport)
            pipes.remove(pipe)
            readers.append(reader)
    except BaseException:  # no child left running unwatched (cancelled, or no pipe)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        for transport in transports:
            transport.close()
        for pipe in pipes:
            pipe.close()
        await asyncio.to_thread(popen.wait)
        raise
    child = Child(popen, readers[0], readers[1])
    child._watch()
    return child
