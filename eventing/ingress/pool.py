"""The main process's side of the ingress workers (see :mod:`eventing.ingress.worker`):
bind the socket, start the workers, store what they send, answer, and stop them.

A worker that dies is started again (with backoff) on the same listening socket, so
the port never closes while the main process lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import Any

from eventing import stages
from eventing.broker.base import Publisher
from eventing.errors import StoreError, StoreFullError
from eventing.events import Event
from eventing.ingress import ipc
from eventing.ingress.auth import IngressAuth
from eventing.ingress.server import IngressSettings
from eventing.ingress.worker import ENV, worker_config
from eventing.metrics import Metrics
from eventing.sourcing import Emit, WebhookRequest, WebhookSource
from eventing.tls import ServerTls

logger = logging.getLogger(__name__)

RESTART_BASE = 0.5
RESTART_MAX = 5.0


class _Main(asyncio.Protocol):
    """One worker's socketpair, on the main process's side."""

    def __init__(self, owner: IngressWorkers, index: int) -> None:
        self.owner = owner
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.counters: dict[tuple[str, tuple[str, ...]], float] = {}
        self.direct: dict[str, bool] = {}
        """The readiness of each broker this worker publishes to itself."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.writer = ipc.Writer(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        publishes: list[tuple[int, bytes]] = []
        for kind, request_id, payload in ipc.split(self.buffer):
            if kind == ipc.PUBLISH:
                publishes.append((request_id, payload))
            elif kind == ipc.WEBHOOK:
                self.owner.spawn(self._webhook(request_id, payload))
            elif kind == ipc.AUTH:
                self.owner.spawn(self._authenticate(request_id, payload))
            elif kind == ipc.STATS:
                self._stats(payload)
            elif kind == ipc.TAP:
                self._tapped(payload)
        if publishes:
            # Everything that arrived together is stored together: one store operation
            # (and one task) for the lot, each request still answered on its own.
            self.owner.spawn(self._publish(publishes))

    def reply(self, kind: bytes, request_id: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.writer.send(ipc.frame(kind, request_id, payload))

    async def _publish(self, requests: list[tuple[int, bytes]]) -> None:
        by_broker: dict[str, list[tuple[int, list[Event]]]] = {}
        for request_id, payload in requests:
            try:
                key, _, events = ipc.decode_publish(payload)
            except Exception as exc:  # every request gets an answer
                logger.error("ingress worker %d sent a bad publish frame: %s", self.index, exc)
                self.reply(
                    ipc.RESULT, request_id, ipc.encode_result(ipc.UNAVAILABLE, 1.0, "internal")
                )
                continue
            by_broker.setdefault(key, []).append((request_id, events))
            if stages.ON:
                for event in events:
                    stages.mark("main has it (IPC)", event)
        for key, batch in by_broker.items():
            try:
                result = await self._store(key, [e for _, events in batch for e in events])
            except Exception:  # a bug; still answer every request of the batch (503)
                logger.exception("storing events from ingress worker %d failed", self.index)
                result = ipc.encode_result(ipc.UNAVAILABLE, 1.0, "internal error")
            if stages.ON:
                for _, events in batch:
                    for event in events:
                        stages.mark("stored (commit and fsync)", event)
            for request_id, _ in batch:
                self.reply(ipc.RESULT, request_id, result)

    async def _store(self, key: str, events: list[Event]) -> bytes:
        if not self.owner.accepting:
            return ipc.encode_result(ipc.UNAVAILABLE, 5.0, "shutting down")
        broker = self.owner.brokers.get(key)
        if broker is None:
            return ipc.encode_result(ipc.UNAVAILABLE, 1.0, f"no broker {key}")
        try:
            await broker.publish(events)
        except StoreFullError as exc:
            return ipc.encode_result(ipc.FULL, exc.retry_after, "the broker's store is full")
        except StoreError as exc:
            return ipc.encode_result(
                ipc.UNAVAILABLE, exc.retry_after, "the broker cannot store events now"
            )
        return ipc.OK_RESULT

    async def _webhook(self, request_id: int, payload: bytes) -> None:
        answer: dict[str, Any]
        try:
            head, body = ipc.decode_json_and_body(payload)
            hook = self.owner.webhooks.get(head["path"])
            if not self.owner.accepting:
                answer = {"status": 503, "headers": {"Retry-After": "5"}}
                out = b'{"error":"shutting down"}'
            elif hook is None:
                answer = {"status": 404, "headers": {}}
                out = b""
            else:
                source, emit = hook
                request = WebhookRequest(
                    head["method"], head["path"], head["headers"], body, head.get("query", {})
                )
                response = await source.handle(request, emit)
                answer = {"status": response.status, "headers": dict(response.headers)}
                out = response.body
        except Exception:  # a bug in a handler: answer it all the same, never leave it
            logger.exception("webhook request from ingress worker %d failed", self.index)
            answer = {"status": 500, "headers": {"Content-Type": "application/json"}}
            out = b'{"error":"internal error"}'
        self.reply(ipc.RESPONSE, request_id, ipc.encode_json_and_body(answer, out))

    async def _authenticate(self, request_id: int, payload: bytes) -> None:
        answer: dict[str, Any]
        out = b""
        try:
            head, _ = ipc.decode_json_and_body(payload)
            hook = self.owner.webhooks.get(head["path"])
            check = getattr(hook[0], "authenticate", None) if hook is not None else None
            verdict = False
            if check is not None:
                request = WebhookRequest(head["method"], head["path"], head["headers"], b"")
                verdict = await check(request)
            if isinstance(verdict, bool):
                answer = {"trusted": verdict}
            else:
                answer = {"status": verdict.status, "headers": dict(verdict.headers)}
                out = verdict.body
        except Exception:  # a bug: answer all the same
            logger.exception("webhook authentication for ingress worker %d failed", self.index)
            answer = {"status": 500, "headers": {"Content-Type": "application/json"}}
            out = b'{"error":"internal error"}'
        self.reply(ipc.RESPONSE, request_id, ipc.encode_json_and_body(answer, out))

    def _tapped(self, payload: bytes) -> None:
        """Events the worker produced itself: counted by the tap, their attributes
        decoded only when the tap needs them; never answered."""
        try:
            key, count, items = ipc.decode_tap(payload)
        except ValueError as exc:
            logger.error("ingress worker %d sent a bad tap frame: %s", self.index, exc)
            return
        tap = self.owner.on_tap
        if tap is not None:
            try:
                tap(key, count, partial(ipc.decode_tap_items, items))
            except Exception:  # the tap never stops the ingress
                logger.exception("the tap failed on events of ingress worker %d", self.index)

    def _stats(self, payload: bytes) -> None:
        message = json.loads(payload)
        direct = message.get("direct")
        if isinstance(direct, dict):
            self.direct = {str(k): bool(v) for k, v in direct.items()}
        if message.get("ready"):
            self.ready.set()
        for name, labels, value in message.get("counters", []):
            key = (name, tuple(labels))
            delta = value - self.counters.get(key, 0.0)
            self.counters[key] = value
            if delta > 0:
                self.owner.count(name, labels, delta)


class IngressWorkers:
    def __init__(
        self,
        count: int,
        brokers: Mapping[str, Publisher],
        webhooks: Sequence[tuple[WebhookSource, Emit]],
        settings: IngressSettings,
        metrics: Metrics,
        log_level: str = "WARNING",
        auth: IngressAuth | None = None,
        direct: Sequence[Mapping[str, Any]] = (),
        worker_module: str = "eventing.ingress.worker",
        on_tap: Callable[[str, int, Callable[[], Any]], None] | None = None,
    ) -> None:
        self.auth = auth
        self.direct = list(direct)
        """Specs of the brokers the workers publish to themselves
        (:mod:`eventing.ingress.direct`); the rest come through this process."""
        self.worker_module = worker_module
        """The workers' entry module (their composition root, which knows the
        factories of ``direct``)."""
        self.on_tap = on_tap
        """Told of the events the workers stored themselves: the broker, how many, and
        a call that decodes their (attributes, data size)."""
        self.tls: ServerTls | None = None
        self.count_workers = count
        self.brokers = brokers
        self.webhooks = {source.path: (source, emit) for source, emit in webhooks}
        self.settings = settings
        self.metrics = metrics
        self.log_level = log_level
        self.listener: socket.socket | None = None
        self.procs: list[asyncio.subprocess.Process | None] = []
        self.channels: list[_Main | None] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self.accepting = True
        """False from the start of a shutdown: requests are answered 503 (the socket
        stays open until the drain is over, so producers never see a refusal)."""
        self.stable_after = 10.0
        """Seconds a worker must run for its restart backoff to start over."""
        self.restarts: list[tuple[int, float]] = []
        """(worker, seconds waited) for each restart, in order."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def count(self, name: str, labels: list[str], delta: float) -> None:
        counters = {
            "eventing_events_received": self.metrics.received,
            "eventing_events_rejected": self.metrics.rejected,
            "eventing_webhook_requests_refused": self.metrics.webhook_refused,
        }
        counter = counters.get(name)
        if counter is not None:
            counter.labels(*labels).inc(delta)

    async def start(self, host: str, port: int, tls: ServerTls | None = None) -> str:
        """Bind ``host:port``, start the workers, return the URL they serve."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(1024)
        listener.set_inheritable(True)
        self.listener = listener
        self.tls = tls
        self.procs = [None] * self.count_workers
        self.channels = [None] * self.count_workers
        for index in range(self.count_workers):
            await self._start_worker(index)
        bound = listener.getsockname()[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        self._watchers = [
            asyncio.create_task(self._watch(i), name=f"ingress worker {i}")
            for i in range(self.count_workers)
        ]
        return f"{'https' if tls else 'http'}://{shown}:{bound}"

    async def _start_worker(self, index: int) -> None:
        assert self.listener is not None
        ours, theirs = socket.socketpair()
        theirs.set_inheritable(True)
        config = worker_config(
            brokers=list(self.brokers),
            webhooks=[s for s, _ in self.webhooks.values()],
            settings=self.settings,
            listen_fd=self.listener.fileno(),
            ipc_fd=theirs.fileno(),
            log_level=self.log_level,
            auth=self.auth,
            tls=self.tls,
            direct=self.direct,
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.worker_module,
            env={**os.environ, ENV: config},
            pass_fds=(self.listener.fileno(), theirs.fileno()),
        )
        theirs.close()
        loop = asyncio.get_running_loop()
        channel = _Main(self, index)
        await loop.create_connection(lambda: channel, sock=ours)
        self.procs[index] = proc
        self.channels[index] = channel
        try:
            async with asyncio.timeout(30):
                await channel.ready.wait()
        except TimeoutError:
            proc.kill()
            raise StoreError("an ingress worker did not start within 30 s") from None

    async def _watch(self, index: int) -> None:
        """Start worker ``index`` again whenever it exits: after ``RESTART_BASE``
        seconds, doubling up to ``RESTART_MAX`` while it keeps crashing, and back to
        the base once it ran ``stable_after`` seconds (a crash now and then must not
        cost ever longer gaps; with one worker, clients wait during the gap)."""
        loop = asyncio.get_running_loop()
        delay = RESTART_BASE
        while not self._stopping:
            proc = self.procs[index]
            assert proc is not None
            started = loop.time()
            code = await proc.wait()
            if self._stopping:
                return
            if loop.time() - started >= self.stable_after:
                delay = RESTART_BASE
            self.restarts.append((index, delay))
            logger.error(
                "ingress worker %d exited with %s; starting it again in %.1fs", index, code, delay
            )
            await asyncio.sleep(delay)
            delay = min(RESTART_MAX, delay * 2)
            with contextlib.suppress(StoreError, OSError):
                await self._start_worker(index)

    def ready(self) -> bool:
        """Whether every running worker can publish to the brokers it publishes to
        itself (a worker being restarted is not counted: its port stays open)."""
        return all(
            all(channel.direct.values())
            for channel in self.channels
            if channel is not None and not channel.closed.is_set()
        )

    def forget(self, key: str) -> None:
        """Broker ``key`` was removed: the workers stop publishing to it themselves."""
        for channel in self.channels:
            if channel is not None:
                channel.reply(ipc.FORGET, 0, key.encode())

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting; let in-flight requests be answered; wait for the workers."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for channel in self.channels:
            if channel is not None:
                channel.reply(ipc.STOP, 0, b"")
        for proc in self.procs:
            if proc is None:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._tasks:  # answers still being worked on: bounded like the rest
            _, late = await asyncio.wait(self._tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for channel in self.channels:
            if channel is not None and channel.transport is not None:
                channel.transport.close()
        if self.listener is not None:
            self.listener.close()
