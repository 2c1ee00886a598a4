"""The orphan guardian: no replica survives ``eventing``, even after ``kill -9``.

How: when the runtime starts its first replica it also starts this small process, in
a session of its own, with a pipe on its stdin. The runtime writes ``add <pgid>`` for
every replica's process group and ``del <pgid>`` when it stopped one. A process killed
with SIGKILL cannot clean up, but the kernel closes its file descriptors: the guardian
reads end-of-file, sends SIGTERM to every process group still registered, waits
``grace`` seconds, sends SIGKILL to what is left, and exits. On a normal shutdown the
runtime stops the replicas itself and then closes the pipe, so the guardian finds
nothing to do.

Why not ``prctl(PR_SET_PDEATHSIG)`` in each child: it needs ``preexec_fn``, which is
unsafe in a process with threads (the store's writer thread), and it only reaches the
replica's leader, not the children it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_all(groups: set[int], grace: float) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    grace = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    groups: set[int] = set()
    for raw in sys.stdin.buffer:
        command, _, value = raw.decode(errors="replace").strip().partition(" ")
        if not value.isdigit():
            continue
        if command == "add":
            groups.add(int(value))
        elif command == "del":
            groups.discard(int(value))
    if groups:
        _kill_all(groups, grace)


class Guardian:
    """The runtime's side: start the guardian, tell it about process groups, close it."""

    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventing.workloads.guardian",
            str(self.grace),
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    def _send(self, line: str) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.write(line.encode())

    def watch(self, pgid: int) -> None:
        self._send(f"add {pgid}\n")

    def unwatch(self, pgid: int) -> None:
        self._send(f"del {pgid}\n")

    async def close(self) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        self.proc.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self.proc.stdin.wait_closed()
        await self.proc.wait()
        self.proc = None


if __name__ == "__main__":
    main()
