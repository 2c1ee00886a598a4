"""WAL checkpoints for the SQLite store, on their own thread and connection.

Why a thread: the store's writes run on the event loop (see
:mod:`eventing.broker.sqlite_store`), and a checkpoint copies the WAL into the
database file and fsyncs both, which must never happen on the loop. So the write
connection has ``wal_autocheckpoint`` off (SQLite would otherwise checkpoint, and
sync, inside the COMMIT that passes 1,000 pages) and this thread runs ``PASSIVE``
checkpoints instead, every :data:`PERIOD` seconds when something was committed
since the last one. ``PASSIVE`` never takes the writer's lock, so it never makes the
loop wait; its own connection keeps ``synchronous = NORMAL``, so it syncs the WAL
before it copies from it and the database after (the write connection syncs
nothing itself).

Why the WAL stays bounded: once a checkpoint has copied every frame, the writer's
next transaction starts the WAL over from its beginning and SQLite truncates the
file to ``journal_size_limit``. Under a steady stream of commits a checkpoint
running beside them almost never ends with every frame copied (frames land while it
copies and syncs), so the WAL would grow for ever. Hence: when a checkpoint leaves
the WAL longer than ``restart_bytes``, the checkpointer asks the store to pause its
commits (the operations wait in memory) and runs a second checkpoint, which has only
the frames committed during the first to copy, with no writer beside it; then
commits resume and restart the WAL. The pause is that short second checkpoint (a
few frames and two fsyncs); SQLite's own automatic checkpoint paused the writer
for the whole copy instead. As a last resort the store itself pauses when the file
passes its bound after a commit (see ``SqliteStore._run``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

PERIOD = 0.05
"""Seconds between checkpoints while commits arrive."""


class Checkpointer:
    """A thread that checkpoints the WAL of ``path``. ``commits`` is read (never
    written) from the thread: the store's commit counter, so an idle store costs one
    wake-up per period and no SQLite call."""

    def __init__(
        self,
        path: Path,
        commits: Callable[[], int],
        restart: Callable[[], object],
        restart_bytes: int,
    ) -> None:
        self._path = path
        self._commits = commits
        self._restart = restart  # asks the store to pause and call complete()
        self._restart_bytes = restart_bytes
        self._wal = f"{path}-wal"
        self._wake = threading.Event()
        self._complete: list[Callable[[], object]] = []  # done-callbacks of complete()
        self._lock = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def complete(self, done: Callable[[], object]) -> None:
        """Checkpoint now, then call ``done`` (on this thread, whatever the result).
        The caller promises no writes until ``done``, so the checkpoint can copy the
        whole WAL."""
        with self._lock:
            self._complete.append(done)
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread and close its connection (blocking: call from a thread).
        Pending ``complete`` callbacks still run."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        seen = self._commits()
        try:
            while True:
                self._wake.wait(PERIOD)
                self._wake.clear()
                with self._lock:
                    waiting, self._complete = self._complete, []
                commits = self._commits()
                if waiting or commits != seen:
                    seen = commits
                    self._checkpoint()
                    if not waiting and self._wal_size() > self._restart_bytes:
                        # The WAL did not start over since it grew past the limit: copy
                        # what landed during the checkpoint above, so the pause for
                        # the last frames is short, and ask for that pause.
                        self._checkpoint()
                        self._restart()
                for done in waiting:
                    done()
                if self._stop:
                    return
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint: it copies the frames committed before it began."""
        assert self._conn is not None
        try:
            busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the next period tries again
            logger.warning("store: WAL checkpoint failed: %s", exc)
            return
        if busy:
            logger.debug("store: WAL checkpoint busy (%s of %s frames)", copied, frames)

    def _wal_size(self) -> int:
        """The WAL file's size: it shrinks only when the WAL starts over."""
        try:
            return os.stat(self._wal).st_size
        except OSError:
            return 0
