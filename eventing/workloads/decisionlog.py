"""The autoscaler's decision file: one JSON line per decision that changed a workload's
replica count (``decisions.jsonl`` in the data directory), bounded on disk and written
off the event loop.

Why a writer: a decision is made on the event loop, and opening, appending to and
renaming a file block for as long as the disk takes (a slow or full disk, a network
volume). So :meth:`DecisionLog.append` only puts the line in memory; one named task
(:meth:`DecisionLog.run`, started by the composition root) writes what is buffered in
a thread, one batch after the other, so lines land in the order they were
decided. :meth:`DecisionLog.close` writes what is left at shutdown, bounded by a
deadline.

Bounded: when a line would take the file past ``max_bytes``, the file is renamed to
``decisions.jsonl.1`` (replacing the one before) and a new one is started, so the two
files hold at most about ``2 x max_bytes``. :func:`read_decisions` reads both, oldest
first. The buffer is bounded too (:data:`MAX_PENDING` lines): when the disk does not
keep up, the oldest unwritten lines are dropped and counted (:attr:`DecisionLog.dropped`),
never the scaler slowed. A failed write (disk full, permissions) is logged and its lines
counted as dropped; the next batch tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

FILE_NAME: Final = "decisions.jsonl"
#: Bytes of one file before it is rotated (``eventing run --decisions-max-mb``).
DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
#: Decisions waiting for the writer before the oldest are dropped.
MAX_PENDING: Final = 10_000
#: Seconds :meth:`DecisionLog.close` may take to write what is left.
CLOSE_DEADLINE: Final = 5.0


def _in_daemon_thread(write: Callable[[list[bytes]], _T], batch: list[bytes]) -> asyncio.Future[_T]:
    """``write(batch)`` in a daemon thread of its own, as a future of the loop. Not the
    default executor: its threads are joined when the process exits, so a write stuck
    on a dead disk would hold the exit forever after :meth:`DecisionLog.close` gave up
    on it; a daemon thread does not (its line is lost, as the warning says)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(set_outcome: Callable[[Any], None], outcome: Any) -> None:
        if not future.done():
            set_outcome(outcome)

    def run() -> None:
        try:
            call: tuple[Callable[[Any], None], Any] = (future.set_result, write(batch))
        except BaseException as exc:  # handed to the loop, raised where awaited
            call = (future.set_exception, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, *call)

    threading.Thread(target=run, name="decisions.jsonl writer", daemon=True).start()
    return future


def rotated(path: Path) -> Path:
    """Where the previous file goes at a rotation (``decisions.jsonl.1``)."""
    return path.with_name(path.name + ".1")


class DecisionLog:
    def __init__(
        self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pending: int = MAX_PENDING
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1 (got {max_bytes})")
        self.path = path
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self.dropped = 0
        """Decisions not written: the buffer overflowed, or a write failed."""
        self.rotations = 0
        self._pending: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._writing: asyncio.Future[tuple[int, int]] | None = None
        """The batch a thread writes now (it outlives a cancelled flush)."""

    def append(self, record: Mapping[str, Any]) -> None:
        """Queue one decision for the writer; never blocks (called on the event loop)."""
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(json.dumps(record, separators=(", ", ": ")).encode() + b"\n")
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Write each new batch as it comes, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything appended so far (after the batch a cancelled flush left in
        its thread, so the order holds)."""
        async with self._lock:
            while self._pending or self._writing is not None:
                if self._writing is None:
                    batch = list(self._pending)
                    self._pending.clear()
                    self._writing = _in_daemon_thread(self._write, batch)
                writing = self._writing
                try:
                    await asyncio.shield(writing)
                finally:
                    if writing.done():
                        self._writing = None
                        if not writing.cancelled() and writing.exception() is None:
                            rotations, failed = writing.result()
                            self.rotations += rotations
                            self.dropped += failed

    async def close(self, timeout: float = CLOSE_DEADLINE) -> None:
        """Write what is left, within ``timeout`` seconds (graceful shutdown)."""
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            logger.warning(
                "%s: %d decision(s) not written within %.0fs", self.path, self.pending, timeout
            )

    def _write(self, batch: list[bytes]) -> tuple[int, int]:
        """Append ``batch``, rotating before a line that would pass ``max_bytes`` (in a
        thread of its own; the only writer of the files): (rotations, lines not written)."""
        rotations = 0
        try:
            f = self.path.open("ab")
            try:
                size = os.fstat(f.fileno()).st_size
                if size and _last_byte(self.path, size) != b"\n":
                    f.write(b"\n")  # a line cut short (kill -9 mid-write): end it
                    size += 1
                for line in batch:
                    if size and size + len(line) > self.max_bytes:
                        f.close()
                        os.replace(self.path, rotated(self.path))
                        rotations += 1
                        f = self.path.open("ab")
                        size = 0
                    f.write(line)
                    size += len(line)
            finally:
                f.close()
        except OSError as exc:
            logger.warning("%s: %d decision(s) not written: %s", self.path, len(batch), exc)
            return rotations, len(batch)
        return rotations, 0


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(size - 1)
        return f.read(1)


def read_decisions(path: Path, attempts: int = 50) -> list[dict[str, Any]]:
    """Every decision in ``path`` and its rotated file, oldest first, a consecutive run
    even while the writer rotates: the current file is opened first and held (so its
    inode cannot be reused), the rotated one read, and the pair kept only if ``path``
    still names the file held (no rotation came between); otherwise read again."""
    for _ in range(attempts):
        try:
            current = path.open("rb")
        except FileNotFoundError:
            older = _read(rotated(path))
            if path.exists():  # created meanwhile (a rotation): look again
                continue
            return _decode(older)
        with current:
            older = _read(rotated(path))
            if _same(path, current.fileno()):
                return _decode(older + current.read())
    raise RuntimeError(f"{path} kept rotating while it was read")


def _same(path: Path, fd: int) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _decode(data: bytes) -> list[dict[str, Any]]:
    """The decisions in ``data``: its complete lines (the one after the last newline is
    being written) that hold a JSON object; a line cut short by a crash is skipped."""
    text = data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out
