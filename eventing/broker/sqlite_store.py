"""The embedded durable store: SQLite in WAL mode, group commit on the event loop.

Why this shape:

* Group commit on the loop: operations queued during one turn of the event loop
  (``append``, ``ack_nowait``, ...) are applied by one callback scheduled for the next
  turn, in one transaction with one COMMIT, so a burst of requests shares one commit.
  At most ``_MAX_GROUP`` operations a group; more wait for the next turn, so other
  callbacks run in between.
* Why on the loop and not on a writer thread (which it was until issue 14's fifth
  session): the thread needed the GIL back after every statement (the sqlite3 module
  lets go of it around each step) and to wake up at all, and while the loop runs
  Python a thread waits up to the switch interval (5 ms) for it: several such waits
  a group were the tail of delivery latency. On the loop the statements cost their C
  time (a group of a few 1 KiB events appends to the WAL in the OS's page cache:
  0.1-0.2 ms at the median, measured) and nothing waits for the GIL. This is not
  the blocking client the loop must not run: the write connection never syncs and
  never checkpoints (``synchronous = OFF``, ``wal_autocheckpoint = 0``), there is no
  network, and the work per turn is bounded.
  The risk: a ``write()`` into the page cache can block when the kernel throttles a
  process dirtying pages faster than the disk takes them (sustained writes beyond the
  disk's rate); the syncer's fsyncs keep the dirty pages of the WAL few.
* Durability ``FULL`` (the default): the syncer thread fsyncs the WAL after each group
  (while the loop goes on), and only then do the group's futures resolve: a 202 is
  never sent for an event that is not on disk, and it survives ``kill -9`` and power
  loss. ``NORMAL`` resolves right after the commit: it survives ``kill -9`` (the
  commit is in the WAL file), not a power loss.
* Checkpoints run on the checkpointer thread with a connection of their own that syncs
  (see :mod:`eventing.broker.sqlite_checkpoint`, which also says how the WAL stays
  bounded); the last connection to close checkpoints at ``close`` (in a thread).
* Delivery need not wait for the fsync, only the 202 does. An append may carry a
  ``committed`` callback, run right after the group's COMMIT, before the group goes
  to the syncer, so the broker offers the events to their triggers while the fsync
  runs. Why that keeps at-least-once: a committed transaction survives ``kill -9`` (it
  is in the OS's page cache), and after a power loss before the fsync the producer
  never got its 202 and sends again (the only case with a duplicate delivery). The
  order per group is: COMMIT -> counters and ``committed`` callbacks -> fsync ->
  futures resolve (the 202s). A failed commit calls no callback; a failed fsync after
  a commit fails the futures (5xx) while the committed rows stay pending and offered,
  as they are in the store.
* A page of a trigger's backlog (``load_pending``: recovery and spill, at most a
  page of rows by their key) is read on the loop through the write connection,
  between groups. Why not on the reader thread, as it was until issue 14's seventh
  session: under a backlog larger than a subscription's memory every delivered event
  is read back, and the hop (waking the thread, the sqlite3 module giving the GIL
  back and taking it again at each row while the loop wants it, the result sent
  back to the loop) cost more than the read: the drain of a stored backlog
  (``bench/bench_dispatch.py --backlog``) took ~3-5 us less CPU per event on the
  loop (docs/benchmarks.md, "Issue 14: the Kafka source and the spill path
  (session 7)"). A page of 256 rows of about 0.5 KiB is ~0.3 ms of C time when its
  pages are in the OS's cache, a few random reads when they are not (the first
  pages after a restart). The other reads (deduplication keys at open, the
  dead-letter list) use a second connection on a reader thread; WAL lets them run
  beside the writes.
* Rows are kept in ``seq`` order only, an event of one trigger on its own row (the
  layout and why: :mod:`eventing.broker.sqlite_schema`); which seqs each trigger has
  pending is kept in memory (:mod:`eventing.broker.pending_index`), changed only
  after a COMMIT from what its statements returned, and rebuilt at open. The
  statements and row helpers are in :mod:`eventing.broker.sqlite_rows`.
* The store is bounded (events and bytes). At the bound ``append`` raises
  :class:`StoreFullError` and the ingress answers 503; stored events are never
  evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eventing import stages
from eventing.broker import sqlite_rows as rows
from eventing.broker.pending_index import PendingIndex
from eventing.broker.sqlite_checkpoint import Checkpointer
from eventing.broker.sqlite_rows import Deltas
from eventing.broker.sqlite_schema import prepare
from eventing.broker.store import DeadLetter, Routed, SeenRow, StoreStats
from eventing.errors import StoreClosedError, StoreError, StoreFullError
from eventing.events import Event

logger = logging.getLogger(__name__)

_MAX_GROUP = 2048

# The writer's statement cache holds every _EVENTS text and the rest beside them.
_CACHED_STATEMENTS = 256
_ACK_RETRY = 1.0  # seconds between attempts to commit acks whose commit failed
_ACK_EVERY = 0.01  # seconds: acks made meanwhile commit together (see _commit_acks)
_ACKS_MAX = 256  # ... or as soon as there are this many
_UNWRITABLE_FOR = 5.0  # seconds a failed commit keeps the store "not writable"
_PAGE_LIST = (
    "SELECT seq, attrs, data FROM events WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq"
)
_PAGE_RANGE = "SELECT seq, attrs, data FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq"


@dataclass(slots=True)
class _Op:
    kind: Literal["append", "ack", "dead_letter", "delete_dl", "release"]
    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop
    committed: Callable[[], None] | None = None
    """Run on the loop once the op's transaction committed (before the fsync)."""


@dataclass
class SqliteSettings:
    path: Path
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """FULL: a 202 survives power loss. NORMAL: survives a process crash only."""
    max_events: int = 1_000_000
    """Stored events (not yet delivered to every matching trigger) before 503."""
    max_bytes: int = 1024 * 1024 * 1024
    """Stored bytes (attributes + data) before 503."""
    max_wal_bytes: int = 64 * 1024 * 1024
    """The WAL file's size past which commits wait for a complete checkpoint; from a
    quarter of it the checkpointer has them wait for its last few frames, and the file
    is cut back to that quarter (see :mod:`eventing.broker.sqlite_checkpoint`)."""


@dataclass
class _Counters:
    events: int = 0
    bytes: int = 0
    commits: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)


class SqliteStore:
    durable = True

    def __init__(self, settings: SqliteSettings) -> None:
        self.settings = settings
        self._conn: sqlite3.Connection | None = None  # the write connection (loop only)
        self._ops: list[_Op] = []  # queued since the last group
        self._scheduled = False  # a group is due on the loop (one call_soon per turn)
        self._held = False  # writes wait for a complete checkpoint (the WAL's bound)
        self._checkpointer: Checkpointer | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._read_conn: sqlite3.Connection | None = None
        self._counts = _Counters()
        self._index = PendingIndex()  # what each trigger has pending (committed)
        self._closed = True
        self._reserved_events = 0
        self._reserved_bytes = 0
        self._next_seq = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._syncer: threading.Thread | None = None
        self._sync_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wal_fd = -1
        self._acks: dict[str, list[int]] = {}
        self._retry: list[_Op] = []  # acks whose commit failed
        self._late_acks: list[_Op] = []  # acks split from a group's appends (see below)
        self._ack_timer: asyncio.Handle | None = None
        self._ack_count = 0  # acks in _acks
        self._retry_timer: asyncio.TimerHandle | None = None
        self._failed_at = 0.0  # monotonic time of the last failed commit (0: none)
        self._ok_at = 0.0  # monotonic time of the last successful commit

    # -- lifecycle -------------------------------------------------------------

    async def open(self, triggers: Sequence[str]) -> None:
        self.settings.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created private: SQLite gives the WAL and shared-memory files the same mode.
        os.close(os.open(self.settings.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._loop = asyncio.get_running_loop()
        try:
            # Recovery, the clean-up of left triggers' rows and the first fsyncs: a
            # thread's work, not the loop's.
            self._conn = await asyncio.to_thread(self._connect, list(triggers))
        except Exception as exc:
            raise StoreError(f"cannot open store: {exc}") from exc
        self._closed = False

    async def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._closed = True
        self._held = False  # a checkpoint in progress only competes with the last group
        for timer in (self._retry_timer, self._ack_timer):
            if timer is not None:
                timer.cancel()
        self._retry_timer = self._ack_timer = None
        # Everything queued commits (acks included, and a last attempt for acks whose
        # commit failed) and every waiting caller is answered before the store stops.
        self._ops[:0], self._retry = self._retry, []
        self._flush_acks()
        while self._ops:
            self._run()
        self._commit_late_acks()
        self._conn = None
        checkpointer, self._checkpointer = self._checkpointer, None
        syncer, self._syncer = self._syncer, None

        def _stop() -> None:
            if syncer is not None:
                self._sync_queue.put(None)  # after every commit already queued
                syncer.join()
            if checkpointer is not None:
                checkpointer.stop()
            if self._wal_fd >= 0:
                os.close(self._wal_fd)
                self._wal_fd = -1
            # The last connection to close checkpoints the WAL into the database and
            # removes it: with syncs, as every checkpoint here.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.close()
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None

        await asyncio.get_running_loop().run_in_executor(self._reader, _stop)
        self._reader.shutdown(wait=True)
        # A store can open again (every embedded broker removed while running, then a
        # new one added): a fresh reader pool for that.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")

    # -- writes ----------------------------------------------------------------

    async def append(
        self,
        broker: str,
        routed: Sequence[Routed],
        *,
        seen: Sequence[SeenRow] = (),
        forget: Sequence[tuple[str, str, str]] = (),
        committed: Callable[[], None] | None = None,
    ) -> None:
        """The deduplication keys in ``seen`` commit in the same transaction as the
        events, so a crash can never keep an event without its key or the reverse.
        ``committed`` runs on the loop once the group is committed, before the fsync
        that this call waits for (see the module docstring); never when the commit
        fails."""
        if not routed and not seen and not forget:
            return
        size = sum(_size(r.event) for r in routed)
        counts = self._counts
        if counts.events + self._reserved_events + len(routed) > self.settings.max_events:
            raise StoreFullError(
                f"store holds {counts.events} events (limit {self.settings.max_events})"
            )
        if counts.bytes + self._reserved_bytes + size > self.settings.max_bytes:
            raise StoreFullError(
                f"store holds {counts.bytes} bytes (limit {self.settings.max_bytes})"
            )
        # Reserved until the commit puts the rows in the counters (not until the fsync:
        # they would count twice meanwhile, and the bound would bite early).
        reserved = [len(routed), size]

        def counted() -> None:
            self._reserved_events -= reserved[0]
            self._reserved_bytes -= reserved[1]
            reserved[:] = [0, 0]
            if committed is not None:
                committed()

        self._reserved_events += len(routed)
        self._reserved_bytes += size
        try:
            await self._submit("append", broker, routed, seen, forget, committed=counted)
        finally:
            self._reserved_events -= reserved[0]
            self._reserved_bytes -= reserved[1]

    async def ack(self, trigger: str, seqs: Sequence[int]) -> None:
        """Commit an ack and wait for it; the acks queued by ``ack_nowait`` before it
        commit with it (not after)."""
        if seqs:
            self._flush_acks()
            await self._submit("ack", {trigger: list(seqs)})

    def ack_nowait(self, trigger: str, seq: int) -> None:
        """Queue an ack without waiting for its commit. It commits within
        ``_ACK_EVERY`` (see :meth:`_commit_acks`); a crash before that redelivers the
        event (at-least-once), and ``close`` commits every queued ack before it
        returns."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        # The acks of every trigger made within _ACK_EVERY commit as one operation, or
        # sooner once there are _ACKS_MAX of them (a bounded commit).
        pending = self._acks.get(trigger)
        if pending is None:
            if self._ack_timer is None:
                assert self._loop is not None
                self._ack_timer = self._loop.call_later(_ACK_EVERY, self._commit_acks)
            pending = self._acks[trigger] = []
        pending.append(seq)
        self._ack_count += 1
        if self._ack_count == _ACKS_MAX:
            assert self._loop is not None
            if self._ack_timer is not None:
                self._ack_timer.cancel()
            self._ack_timer = self._loop.call_soon(self._commit_acks)

    def _commit_acks(self) -> None:
        """Commit the acks made since the first of them, ``_ACK_EVERY`` ago, in a
        transaction of their own. Why not with the next group, as the appends: acks
        come in every loop turn the subscribers answer, and one commit for many turns'
        acks is a fraction of the loop's time and of the WAL's pages (the same pending
        and events pages, rewritten by every commit); the price is that a crash
        redelivers the events acked in the last ``_ACK_EVERY``."""
        self._ack_timer = None
        self._flush_acks()
        if not self._held and self._conn is not None:
            ops, self._ops = self._ops, []  # retried acks too, if the loop is idle
            if all(op.kind == "ack" for op in ops):
                if ops:  # none when a waited ack took them first
                    self._commit_guarded(self._conn, ops)
                    self._bound_wal()
                return
            self._ops = ops
        if not self._scheduled and self._conn is not None:
            self._schedule()

    def _flush_acks(self) -> None:
        """One operation for the acks of every trigger (not one per trigger: a
        thousand triggers would be a thousand operations)."""
        acks, self._acks = self._acks, {}
        self._ack_count = 0
        assert self._loop is not None
        if acks:
            self._ops.append(_Op("ack", (acks,), None, self._loop))

    async def dead_letter(
        self,
        broker: str,
        trigger: str,
        event: Event,
        *,
        attempts: int,
        reason: str,
        status: int | None,
    ) -> None:
        await self._submit(
            "dead_letter", broker, trigger, event, attempts, reason, status, time.time()
        )

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        result: int = await self._submit("delete_dl", list(ids))
        return result

    async def release_trigger(self, trigger: str) -> int:
        """Remove every pending row of ``trigger`` (a deleted trigger's backlog) and the
        events no other trigger still has pending; the number of rows removed. Applied
        after every append already queued, so a row routed before the trigger left is
        removed too."""
        result: int = await self._submit("release", trigger)
        return result

    def _submit(
        self, kind: Any, *args: Any, committed: Callable[[], None] | None = None
    ) -> asyncio.Future[Any]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[Any] = loop.create_future()
        self._ops.append(_Op(kind, args, future, loop, committed))
        if not self._scheduled:
            self._schedule()
        return future

    def _schedule(self) -> None:
        assert self._loop is not None
        self._scheduled = True
        self._loop.call_soon(self._run)

    # -- reads -----------------------------------------------------------------

    def writable(self) -> bool:
        """False when the store is closed, or a commit failed and nothing has committed
        since (for a few seconds at most, so traffic can try again): what readiness
        reports, so a load balancer stops sending what would get 503."""
        if self._closed or self._conn is None:
            return False
        failed, ok = self._failed_at, self._ok_at
        return failed <= ok or time.monotonic() - failed > _UNWRITABLE_FOR

    def pending_count(self, trigger: str) -> int:
        return self._index.count(trigger)

    def stats(self) -> StoreStats:
        c = self._counts
        return StoreStats(c.events, c.bytes, c.commits, self._index.counts(), dict(c.dead_letters))

    async def load_pending(self, trigger: str, after_seq: int, limit: int) -> list[Event]:
        """The seqs come from the index (what is committed now), the events by seq
        from the write connection on the loop: no per-trigger structure on disk (see
        sqlite_schema). Rows after ``after_seq`` are not handed out yet, so no ack
        removes them meanwhile; a release might (then they are not returned)."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        seqs = self._index.page(trigger, after_seq, limit)
        if not seqs:
            return []
        if seqs[-1] - seqs[0] == len(seqs) - 1:
            # Every seq between the first and the last (one trigger's backlog, or
            # events matching all): the same rows by one range of the key, without
            # the list to parse and look up (~25 % less CPU per row read, measured).
            sql = _PAGE_RANGE
            params: tuple[Any, ...] = (seqs[0], seqs[-1])
        else:
            sql, params = _PAGE_LIST, (rows.encode_rows(seqs),)
        conn = self._conn
        if conn is not None and not conn.in_transaction:
            # On the loop, through the write connection (see the module docstring).
            found = conn.execute(sql, params).fetchall()
        else:
            found = await self._read(sql, params)
        decode = rows.decode
        return [Event(decode(attrs), data, seq) for seq, attrs, data in found]

    async def load_seen(self, broker: str) -> list[SeenRow]:
        found = await self._read(
            "SELECT scope, source, id, at FROM seen WHERE broker = ? ORDER BY at", (broker,)
        )
        return [(scope, source, event_id, at) for scope, source, event_id, at in found]

    async def list_dead_letters(
        self, trigger: str | None, limit: int, after_id: int = 0
    ) -> list[DeadLetter]:
        columns = "SELECT id, broker, trigger, attrs, data, failed_at, attempts, reason, status"
        if trigger:
            sql = f"{columns} FROM dead_letters WHERE id > ? AND trigger = ? ORDER BY id LIMIT ?"
            params: tuple[Any, ...] = (after_id, trigger, limit)
        else:
            sql = f"{columns} FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?"
            params = (after_id, limit)
        return [rows.dead_letter(row) for row in await self._read(sql, params)]

    async def get_dead_letter(self, dl_id: int) -> DeadLetter | None:
        found = await self._read(
            "SELECT id, broker, trigger, attrs, data, failed_at, attempts, reason, status "
            "FROM dead_letters WHERE id = ?",
            (dl_id,),
        )
        return rows.dead_letter(found[0]) if found else None

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            if self._read_conn is None:
                self._read_conn = sqlite3.connect(self.settings.path, check_same_thread=False)
                self._read_conn.execute("PRAGMA query_only = ON")
            return self._read_conn.execute(sql, params).fetchall()

        if self._closed:
            raise StoreClosedError("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    # -- the writes, on the loop -------------------------------------------------

    def _connect(self, triggers: list[str]) -> sqlite3.Connection:
        """Open the write connection (in a thread, at ``open``)."""
        conn = sqlite3.connect(
            self.settings.path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=_CACHED_STATEMENTS,
        )
        try:
            self._prepare(conn, triggers)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection, triggers: list[str]) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # until the clean-up below is synced
        # Tables made or migrated, left triggers' rows removed, the state read back.
        loaded = prepare(conn, triggers)
        wal = f"{self.settings.path}-wal"
        self._wal_fd = os.open(wal, os.O_RDONLY | os.O_CREAT, 0o600)
        os.fsync(self._wal_fd)
        directory = os.open(self.settings.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the WAL file's own directory entry
        finally:
            os.close(directory)
        # From here the write connection, which runs on the event loop, never syncs
        # and never checkpoints: with FULL durability the syncer thread fsyncs the WAL
        # after each group (see _sync_loop), and the checkpointer thread checkpoints
        # (with syncs, on its own connection) so the WAL stays bounded. Safe with
        # ``synchronous = OFF`` here because nothing copies WAL frames into the
        # database but a connection that syncs the WAL first (the checkpointer, and
        # the last connection to close, which ``close`` sets back to NORMAL).
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {self.settings.max_wal_bytes // 4:d}")
        self._next_seq = loaded.next_seq
        self._counts.events, self._counts.bytes = loaded.events, loaded.bytes
        self._counts.dead_letters = loaded.dead_letters
        self._index = loaded.index
        if self.settings.synchronous == "FULL":
            self._syncer = threading.Thread(
                target=self._sync_loop, name="sqlite-syncer", daemon=True
            )
            self._syncer.start()
        counts, loop = self._counts, self._loop
        assert loop is not None
        self._checkpointer = Checkpointer(
            self.settings.path,
            lambda: counts.commits,
            lambda: loop.call_soon_threadsafe(self._hold),
            self.settings.max_wal_bytes // 4,
        )
        self._checkpointer.start()

    def _run(self) -> None:
        """Commit what was queued since the last group, on the loop: at most
        ``_MAX_GROUP`` operations, then yield to the loop before the next group."""
        self._scheduled = False
        conn = self._conn
        if conn is None or self._held:
            return  # closed (``close`` commits what was queued), or resumed by _resume
        ops = self._ops
        if len(ops) > _MAX_GROUP:
            batch, self._ops = ops[:_MAX_GROUP], ops[_MAX_GROUP:]
            self._schedule()
        else:
            batch, self._ops = ops, []
        if batch:
            self._commit_appends_first(conn, batch)
            self._bound_wal()

    def _bound_wal(self) -> None:
        """After a commit: past its bound the WAL has to start over before the next."""
        if not self._closed and os.fstat(self._wal_fd).st_size > self.settings.max_wal_bytes:
            self._hold()

    def _hold(self) -> None:
        """No commits until a checkpoint copied the whole WAL, so the next commit
        starts it over (see :mod:`eventing.broker.sqlite_checkpoint`)."""
        if self._held or self._closed or self._checkpointer is None:
            return
        assert self._loop is not None
        self._held = True
        loop = self._loop
        self._checkpointer.complete(lambda: loop.call_soon_threadsafe(self._resume))

    def _resume(self) -> None:
        self._held = False
        if self._ops and not self._scheduled and self._conn is not None:
            self._schedule()

    def _commit_appends_first(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        """Commit the group's acks in a transaction of their own, in a later callback:
        an ack's failure (which is retried) then never fails the appends beside it, and
        the deliveries the appends' commit woke run before the acks' statements.
        Nothing orders an ack before an append of the same group: an event is acked
        only after it was committed (and offered), so always in an earlier group."""
        acks = [op for op in batch if op.kind == "ack"]
        if not acks or len(acks) == len(batch):
            self._commit_guarded(conn, batch)
            return
        self._commit_guarded(conn, [op for op in batch if op.kind != "ack"])
        if not self._late_acks:
            assert self._loop is not None
            self._loop.call_soon(self._commit_late_acks)
        self._late_acks.extend(acks)

    def _commit_late_acks(self) -> None:
        acks, self._late_acks = self._late_acks, []
        if self._held and not self._closed:  # after the checkpoint, with the next group
            self._ops[:0] = acks
            return
        if acks and self._conn is not None:
            self._commit_guarded(self._conn, acks)
            self._bound_wal()

    def _commit_guarded(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        """Commit ``batch``; whatever goes wrong, every future gets an answer and the
        loop goes on."""
        try:
            self._commit(conn, batch)
        except Exception as exc:  # a bug or an input the checks missed
            logger.exception("store: a commit group failed")
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            for op in batch:
                if op.future is not None:
                    _fail(op.future, StoreError(f"store error: {type(exc).__name__}"))

    def _retry_acks(self) -> None:
        self._retry_timer = None
        if self._retry and self._conn is not None:
            self._ops[:0], self._retry = self._retry, []
            if not self._scheduled:
                self._schedule()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        results: list[Any] = [None] * len(batch)
        deltas = Deltas()
        if stages.ON:
            _mark("store writer took it", batch)
        try:
            conn.execute("BEGIN")
            self._apply(conn, batch, results, deltas)
            conn.execute("COMMIT")
            if stages.ON:
                _mark("store committed", batch)
        except sqlite3.Error as exc:
            logger.error("store commit failed: %s", exc)
            self._failed_at = time.monotonic()
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            error = StoreFullError(str(exc)) if "full" in str(exc) else StoreError(str(exc))
            for op in batch:
                if op.future is not None:
                    _fail(op.future, error)
                elif op.kind == "ack":
                    # Nobody waits on an ack: keep it and try again, or the delivered
                    # event would stay in the backlog (and be redelivered) until restart.
                    self._retry.append(op)
            if self._retry and self._retry_timer is None and not self._closed:
                assert self._loop is not None
                self._retry_timer = self._loop.call_later(_ACK_RETRY, self._retry_acks)
            return
        except Exception:
            # One operation the checks let through (an id out of SQLite's range, ...):
            # roll back and apply each operation on its own, so only it fails.
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if len(batch) == 1:
                raise
            for op in batch:
                self._commit_guarded(conn, [op])
            return
        self._ok_at = time.monotonic()
        if self._syncer is None:  # NORMAL: committed is as far as it goes
            self._committed(batch, results, deltas, True)
            return
        # FULL: counters and ``committed`` callbacks now, futures after the fsync. A
        # group nobody waits on (acks only) has no need of the syncer at all.
        self._committed(batch, results, deltas, False)
        if any(op.future is not None for op in batch):
            self._sync_queue.put((batch, results))

    def _sync_loop(self) -> None:
        """Make commits durable in groups, beside the loop's commits.

        Why not ``synchronous=FULL``: SQLite would fsync inside every COMMIT, on the
        loop, and requests would wait for the fsync of the group before theirs as well
        as their own. Here the loop commits (into the WAL, no fsync) and moves on,
        while this thread fsyncs
        the WAL file and only then lets the commits' futures resolve (the 202s). The
        guarantee is FULL's: a 202'd event is on disk; SQLite's WAL checksums make a
        torn tail after a power loss harmless; checkpoints (the checkpointer's
        connection) sync the WAL and the database themselves.
        """
        while True:
            item = self._sync_queue.get()
            if item is None:
                return
            items = [item]
            stop = False
            while True:
                try:
                    more = self._sync_queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                items.append(more)
            try:
                self._fsync()
            except OSError as exc:
                # The rows are committed (and were offered): only the 202s are refused.
                logger.error("fsync of the store's WAL failed: %s", exc)
                error = StoreError(f"fsync failed: {exc}")
                for batch, _ in items:
                    for op in batch:
                        if op.future is not None:
                            op.loop.call_soon_threadsafe(_fail, op.future, error)
            else:
                if stages.ON:
                    for batch, _ in items:
                        _mark("store fsynced", batch)
                # One wake-up of the loop for every group this fsync made durable.
                items[0][0][0].loop.call_soon_threadsafe(_durable, items)
            if stop:
                return

    def _fsync(self) -> None:
        """Make every commit so far durable (a test holds it to look between)."""
        os.fsync(self._wal_fd)

    def _apply(
        self, conn: sqlite3.Connection, batch: list[_Op], results: list[Any], d: Deltas
    ) -> None:
        """Apply one group with a handful of set-based statements, not one per event
        (see :mod:`eventing.broker.sqlite_rows`)."""
        event_rows: list[tuple[Any, ...]] = []
        many: dict[str, list[int]] = {}  # rows of the events of several triggers
        acked: list[dict[str, list[int]]] = []  # the ack ops' maps, as they are
        seen_rows: list[tuple[str, str, str, str, float]] = []
        forget_rows: list[tuple[str, str, str, str]] = []
        for number, op in enumerate(batch):
            if op.kind == "append":
                broker, routed, seen, forget = op.args
                if seen:
                    seen_rows.extend([(broker, *row) for row in seen])
                if forget:
                    forget_rows.extend([(broker, *row) for row in forget])
                self._next_seq = rows.add_rows(broker, routed, self._next_seq, event_rows, many, d)
            elif op.kind == "ack":  # {trigger: [seq, ...]}: only read, a retry reuses it
                acked.append(op.args[0])
            elif op.kind == "dead_letter":
                rows.insert_dead_letter(conn, d, *op.args)
                event = op.args[2]
                if event.seq:
                    acked.append({op.args[1]: [event.seq]})
            elif op.kind == "release":
                if event_rows:  # rows appended earlier in this group go first
                    rows.insert_events(conn, event_rows)
                    rows.insert_many(conn, many)
                    event_rows, many = [], {}
                if acked:
                    rows.apply_acks(conn, d, self._index, acked)
                    acked = []
                results[number] = rows.apply_release(conn, d, self._index, *op.args)
            else:
                results[number] = rows.delete_dead_letters(conn, d, *op.args)
        if event_rows:
            rows.insert_events(conn, event_rows)
            rows.insert_many(conn, many)
        if forget_rows:  # before the inserts: a key evicted and seen again is kept
            rows.forget(conn, forget_rows)
        if seen_rows:
            rows.remember(conn, seen_rows)
        if acked:
            rows.apply_acks(conn, d, self._index, acked)

    def _committed(
        self, batch: list[_Op], results: list[Any], deltas: Deltas, durable: bool
    ) -> None:
        """On the event loop, once ``batch`` committed: apply counter deltas and the
        index's changes (appended before removed: a row may be both in one group),
        run the ``committed`` callbacks, then (``durable``: no fsync to wait for)
        resolve the waiting futures."""
        counts = self._counts
        counts.events += deltas.events
        counts.bytes += deltas.bytes
        counts.commits += 1
        index = self._index
        for trigger, seqs in deltas.added.items():
            index.add(trigger, seqs)
        remove = index.remove
        for trigger, seq in deltas.removed:
            remove(trigger, seq)
        for key, n in deltas.dead_letters.items():
            counts.dead_letters[key] = counts.dead_letters.get(key, 0) + n
        for op in batch:
            if op.committed is not None:
                try:
                    op.committed()
                except Exception:  # the caller's bug: the other ops still get answers
                    logger.exception("store: a committed callback failed")
        if durable:
            for op, result in zip(batch, results, strict=True):
                if op.future is not None:
                    _resolve(op.future, result)


def _durable(items: list[tuple[list[_Op], list[Any]]]) -> None:
    """On the event loop, once an fsync made ``items`` durable: resolve the futures."""
    for batch, results in items:
        for op, result in zip(batch, results, strict=True):
            if op.future is not None:
                _resolve(op.future, result)


def _mark(stage: str, batch: list[_Op]) -> None:
    """Stage times of the appended events (only with ``EVENTING_STAGE_TIMES``)."""
    for op in batch:
        if op.kind == "append":
            for r in op.args[1]:
                stages.mark(stage, r.event)


def _size(event: Event) -> int:
    return len(event.data or b"") + 64 * len(event.attributes)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
