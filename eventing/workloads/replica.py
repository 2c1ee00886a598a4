"""One replica of a workload: a subprocess in its own process group, with its own
``PORT``, a readiness probe, prefixed output, and a bounded stop.

Lifecycle: ``starting`` (spawned, probing) -> ``ready`` (receives events) ->
``draining`` (no new events; in-flight ones finish) -> ``stopped``. A draining replica
may go back to ``ready`` if the pool needs it again before it was signalled. A replica
whose process exits on its own is ``crashed``; the pool replaces it.

Draining and terminating are separate on purpose: draining waits for the work (up to
the workload's ``maxDrainSeconds``, an hour by default, because a build may run for
minutes), terminating waits for the process after SIGTERM (up to
``terminationGracePeriodSeconds``, then SIGKILL). A short grace never cuts work short.

Why a process group of its own: stopping a replica must stop everything it started
(a shell script's children too), and a terminal's Ctrl-C must reach ``eventing`` only,
which then stops replicas in order. No shell is involved: ``command`` is an argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from eventing.workloads.spawn import Child, spawn

logger = logging.getLogger(__name__)

State = Literal["starting", "ready", "draining", "stopped", "crashed"]

FIRST_PROBE_GAP = 0.001
"""Seconds between the first two readiness probes; the gap doubles up to the period."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: What a replica inherits from eventing's own environment: what a process needs to
#: run (where programs, home, temp files and the locale are), never anything else;
#: secrets such as ``EVENTING_SECRET_*`` reach a replica only if its manifest's ``env``
#: names them.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM")


def replica_environment(
    parent: Mapping[str, str], asked: Mapping[str, str], port: int, workload: str
) -> dict[str, str]:
    """A replica's environment: the basics of :data:`INHERITED` (and ``LC_*``), what its
    manifest's ``env`` asks for, ``PORT``, and ``K_SERVICE`` (the workload's name, as
    Knative Serving sets it)."""
    env = {k: v for k, v in parent.items() if k in INHERITED or k.startswith("LC_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(asked)
    env["PORT"] = str(port)
    env["K_SERVICE"] = workload.rsplit("/", 1)[-1]
    return env


@dataclass
class ReplicaConfig:
    workload: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    probe_path: str | None = "/healthz"
    """HTTP GET path for readiness; None probes by TCP connect."""
    probe_period: float = 0.005
    """The longest gap between two probes while it starts (they begin 1 ms apart)."""
    probe_timeout: float = 1.0
    startup_timeout: float = 60.0
    grace_period: float = 10.0
    """After SIGTERM, seconds before SIGKILL (``terminationGracePeriodSeconds``)."""
    max_drain: float = 3600.0
    """Seconds a replica chosen to go may keep working on its in-flight events before it
    is stopped anyway (``maxDrainSeconds``)."""


class Replica:
    def __init__(
        self,
        config: ReplicaConfig,
        number: int,
        *,
        on_exit: Callable[[Replica], None],
        output: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.number = number
        self.name = f"{config.workload}-{number}"
        self.port = free_port()
        self.state: State = "starting"
        self.in_flight = 0
        self.created = time.monotonic()
        self.ready_at: float | None = None
        self.proc: Child | None = None
        self._on_exit = on_exit
        self._output = output or _print
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._revived = asyncio.Event()
        self.draining_since: float | None = None
        self.signalled = False
        """Set once SIGTERM was sent: from then on it cannot be revived."""
        self.stopped_busy = 0
        """Events it held when it was stopped past its drain limit (redelivered)."""

    @property
    def pgid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        env = replica_environment(os.environ, self.config.env, self.port, self.config.workload)
        # `python` in a command means the interpreter eventing runs on (as if its
        # virtualenv were activated), so replicas see the same installed packages.
        bin_dir = os.path.dirname(sys.executable)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        self.proc = await spawn(
            self.config.command, env=env, cwd=self.config.working_dir
        )  # its own process group (and session)
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._tasks = [
            asyncio.create_task(self._pump(self.proc.stdout), name=f"{self.name} stdout"),
            asyncio.create_task(self._pump(self.proc.stderr), name=f"{self.name} stderr"),
            asyncio.create_task(self._watch(), name=f"{self.name} watch"),
        ]

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream limit: skip it
                continue
            if not line:
                return
            self._output(f"[{self.name}] {line.decode(errors='replace').rstrip()}")

    async def _watch(self) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        if self.state not in ("stopped", "draining"):
            logger.warning("replica %s exited with status %s", self.name, code)
            self.state = "crashed"
        else:
            self.state = "stopped"
        self._on_exit(self)

    async def wait_ready(self) -> bool:
        """Probe until ready; False if the process died or the startup timeout passed.

        The first probe goes out as soon as the process exists, then 1 ms apart, the gap
        doubling up to ``probe_period``: a replica that listens quickly is seen within
        a millisecond or two of listening, one that takes seconds costs a probe every
        ``probe_period`` (a refused loopback connect is a few tens of microseconds)."""
        deadline = time.monotonic() + self.config.startup_timeout
        delay = min(FIRST_PROBE_GAP, self.config.probe_period)
        while self.state == "starting":
            if await self._probe():
                if self.state != "starting":
                    return False
                self.state = "ready"
                self.ready_at = time.monotonic()
                return True
            if time.monotonic() > deadline:
                logger.warning(
                    "replica %s not ready within %.0fs", self.name, self.config.startup_timeout
                )
                return False
            await asyncio.sleep(delay)
            delay = min(2 * delay, self.config.probe_period)
        return False

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(self.config.probe_timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    if self.config.probe_path is None:
                        return True
                    writer.write(
                        f"GET {self.config.probe_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Connection: close\r\n\r\n".encode()
                    )
                    status = await reader.readline()
                    parts = status.split(b" ", 2)
                    return len(parts) >= 2 and parts[1][:1] == b"2"
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except (OSError, TimeoutError):
            return False

    def lease(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def mark_draining(self, now: float | None = None) -> None:
        """Take no new events from this moment (the pool's router skips it)."""
        if self.state in ("starting", "ready"):
            self.state = "draining"
            self.draining_since = time.monotonic() if now is None else now
            self._revived.clear()

    def revive(self) -> bool:
        """Back to ``ready`` if it is draining and was not signalled yet."""
        if self.state != "draining" or self.signalled or self.ready_at is None:
            return False
        self.state = "ready"
        self.draining_since = None
        self._revived.set()
        return True

    async def drain(self, limit: float) -> Literal["idle", "revived", "expired"]:
        """Wait until its in-flight events are done, it is revived, or ``limit`` s pass."""
        if not self.in_flight:
            return "idle"
        idle = asyncio.ensure_future(self._idle.wait())
        revived = asyncio.ensure_future(self._revived.wait())
        try:
            done, _ = await asyncio.wait(
                (idle, revived), timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in (idle, revived):
                waiter.cancel()
            await asyncio.gather(idle, revived, return_exceptions=True)
        if revived in done and self.state == "ready":
            return "revived"
        if not self.in_flight:
            return "idle"
        return "expired"

    async def stop(self, *, drain: bool = True, drain_limit: float | None = None) -> None:
        """Stop routing to it, let in-flight events finish (up to ``drain_limit``,
        default ``max_drain``), then SIGTERM its process group, then SIGKILL after the
        grace period. The pool drains first itself (so it can revive or count); this
        is also what shutdown calls, with a short ``drain_limit``."""
        if self.state in ("stopped", "crashed"):
            await self._reap()
            return
        self.mark_draining()
        if drain and self.in_flight:
            limit = self.config.max_drain if drain_limit is None else drain_limit
            if await self.drain(limit) == "revived":
                return
        await self.terminate()

    async def terminate(self) -> None:
        """SIGTERM the process group; SIGKILL after the grace period."""
        if self.state in ("stopped", "crashed"):
            await self._reap()
            return
        self.state = "stopped"
        self.signalled = True
        grace = self.config.grace_period
        self._signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await self._reap()
        except TimeoutError:
            logger.warning("replica %s ignored SIGTERM for %.0fs: SIGKILL", self.name, grace)
            self._signal(signal.SIGKILL)
            await self._reap()

    def kill(self) -> None:
        """SIGKILL the process group now (for a replica that never became ready)."""
        self.state = "stopped"
        self.signalled = True
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def _reap(self) -> None:
        if self.proc is not None:
            await self.proc.wait()
        # Children that outlived the leader keep the group (and our pipes) alive: end
        # them, so the output pumps see EOF.
        self._signal(signal.SIGKILL)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=5)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
