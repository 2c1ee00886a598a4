"""Ingress worker processes: the HTTP front of the broker on more than one core.

Why: one Python process runs on one core. Parsing HTTP requests is about half of what
the event loop does per event; the other half (storing, dispatching, delivering) must
stay in one process, which owns the store and the triggers. So the main process binds
the ingress socket and hands it to N worker processes that accept connections, parse
and validate requests with the same :class:`~eventing.ingress.server.Ingress` code, and send
each accepted event over a socketpair (:mod:`eventing.ingress.ipc`) to the main process,
which stores it and answers; only then does the worker answer 202. Webhook requests
are forwarded as they came and answered with what the source's handler returned.

If the main process dies, every worker sees end-of-file on its socketpair and exits at
once, answering nothing more: no 202 is ever sent for an event that was not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from eventing import stages
from eventing.broker.base import Publisher
from eventing.connections import raise_open_file_limit
from eventing.errors import StoreError, StoreFullError
from eventing.events import Event
from eventing.ingress import ipc
from eventing.ingress.auth import IngressAuth
from eventing.ingress.direct import DirectBrokers, DirectFactory
from eventing.ingress.fastpath import FastPath
from eventing.ingress.server import Ingress, IngressSettings
from eventing.metrics import Metrics
from eventing.sourcing import Emit, SourceHealth, WebhookRequest, WebhookResponse
from eventing.tls import ServerTls, server_context, watch

logger = logging.getLogger(__name__)

ENV = "EVENTING_INGRESS_WORKER"
COUNTERS = (
    "eventing_events_received",
    "eventing_events_rejected",
    "eventing_webhook_requests_refused",
)


SWEEP = 0.05
"""Seconds between two checks of the answer deadlines (they are seconds long)."""


Answered = Callable[[bytes | None], None]
"""A request's answer callback: the payload, or None when its deadline passed."""


class _Channel(asyncio.Protocol):
    """The worker's end of the socketpair: requests out, answers in."""

    def __init__(self, timeout: float = ipc.ANSWER_TIMEOUT) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: dict[int, asyncio.Future[tuple[bytes, bytes]] | Answered] = {}
        self.next_id = 0
        self.stop = asyncio.Event()
        self.lost = asyncio.Event()
        # Answer deadlines checked by a sweep every SWEEP seconds rather than a timer
        # per request (a timer start and stop, and a context manager, on every event).
        self._deadlines: dict[int, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.forget: Callable[[str], None] = lambda key: None
        """Called with a broker's key when the main process removed it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.writer = ipc.Writer(transport)
        # Looked up once: asyncio.get_running_loop() costs a getpid system call per
        # call on Python 3.11, and request() runs for every event.
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self.stop.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for kind, request_id, payload in ipc.split(self.buffer):
            if kind == ipc.STOP:
                self.stop.set()
                continue
            if kind == ipc.FORGET:
                self.forget(payload.decode(errors="replace"))
                continue
            waiter = self.pending.pop(request_id, None)
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_result((kind, payload))
            elif waiter is not None:
                self._deadlines.pop(request_id, None)
                self._call(waiter, payload)

    @staticmethod
    def _call(callback: Answered, payload: bytes | None) -> None:
        try:
            callback(payload)
        except Exception:  # a bug in one request's answer must not stop the others'
            logger.exception("answering a request from the main process failed")

    def request_soon(self, kind: bytes, payload: bytes, callback: Answered) -> None:
        """:meth:`request` without a task: ``callback`` gets the answer's payload, or
        None when the deadline passed first (called from the loop, never from here).
        Raises :class:`StoreError` at once when the main process is gone."""
        if self.lost.is_set() or self.transport is None:
            raise StoreError("the broker process is gone")
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        request_id = self.next_id
        self.pending[request_id] = callback
        self._deadlines[request_id] = self.loop.time() + self.timeout
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(SWEEP, self._sweep)
        self.writer.send(ipc.frame(kind, request_id, payload))

    async def request(self, kind: bytes, payload: bytes) -> tuple[bytes, bytes]:
        """Send a request and wait for its answer, at most ``timeout`` seconds.

        Why a deadline: a request the main process never answers (a bug, an overload)
        would otherwise hold the client's connection and its body forever. After the
        deadline the client gets 503 and may retry; the pending entry is dropped, so a
        late answer is ignored."""
        timeout = self.timeout
        if self.lost.is_set() or self.transport is None:
            raise StoreError("the broker process is gone")
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        request_id = self.next_id
        loop = self.loop
        future: asyncio.Future[tuple[bytes, bytes]] = loop.create_future()
        self.pending[request_id] = future
        self._deadlines[request_id] = loop.time() + timeout
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP, self._sweep)
        self.writer.send(ipc.frame(kind, request_id, payload))
        try:
            return await future
        except TimeoutError:
            raise StoreError(f"the broker process did not answer within {timeout:g}s") from None
        finally:
            self.pending.pop(request_id, None)
            self._deadlines.pop(request_id, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        expired = [rid for rid, deadline in self._deadlines.items() if deadline <= now]
        for request_id in expired:
            del self._deadlines[request_id]
            waiter = self.pending.get(request_id)
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_exception(TimeoutError())
            elif waiter is not None:
                del self.pending[request_id]
                self._call(waiter, None)
        self._sweeper = self.loop.call_later(SWEEP, self._sweep) if self._deadlines else None

    def send(self, kind: bytes, payload: bytes) -> None:
        if self.transport is not None and not self.lost.is_set():
            self.writer.send(ipc.frame(kind, 0, payload))

    def tell(self, broker: str, events: Sequence[Event]) -> None:
        """Tell the main process of events this worker stored itself (its tap)."""
        self.send(ipc.TAP, ipc.encode_tap(broker, events))


def _refusal(payload: bytes) -> StoreError | None:
    """None for the OK answer to a publish, else the error it names."""
    if payload == ipc.OK_RESULT:
        return None
    status, retry_after, message = ipc.decode_result(payload)
    if status == ipc.OK:
        return None
    error = StoreFullError(message) if status == ipc.FULL else StoreError(message)
    error.retry_after = retry_after or 1.0
    return error


class RemoteBroker:
    """A broker in the main process, as the worker's :class:`Ingress` sees it."""

    broker_class = "remote"
    durable = True

    def __init__(self, key: str, channel: _Channel) -> None:
        self.key = key
        self.channel = channel

    async def publish(self, events: Sequence[Event]) -> None:
        _, payload = await self.channel.request(
            ipc.PUBLISH, ipc.encode_publish(self.key, "x", events)
        )
        error = _refusal(payload)
        if error is not None:
            raise error

    def publish_soon(
        self, events: Sequence[Event], done: Callable[[StoreError | None], None]
    ) -> None:
        """:meth:`publish` without a task, for the fast path: ``done`` gets None once
        stored, else the error; raises :class:`StoreError` at once when the main
        process is gone."""
        timeout = self.channel.timeout

        def answered(payload: bytes | None) -> None:
            if payload is None:
                done(StoreError(f"the broker process did not answer within {timeout:g}s"))
            else:
                done(_refusal(payload))

        self.channel.request_soon(ipc.PUBLISH, ipc.encode_publish(self.key, "x", events), answered)

    def subscribe(self, trigger: str, event_filter: Any) -> Any:
        raise NotImplementedError("triggers live in the main process")

    def drops(self) -> Mapping[tuple[str, str], int]:
        return {}


_UNAVAILABLE = WebhookResponse(
    503,
    b'{"error":"the broker cannot take the request now; retry later"}',
    {"Content-Type": "application/json", "Retry-After": "5"},
)


class RemoteWebhook:
    """A webhook source in the main process: requests are forwarded as they came."""

    def __init__(self, name: str, path: str, max_body_bytes: int, channel: _Channel) -> None:
        self.name = name
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.health = SourceHealth(name, "remote")
        self.channel = channel

    async def authenticate(self, request: WebhookRequest) -> WebhookResponse | bool:
        """Ask the source in the main process about the headers (the secret stays
        there); see :func:`eventing.ingress.server._preauthenticate`."""
        head = {"path": request.path, "method": request.method, "headers": request.headers}
        try:
            _, payload = await self.channel.request(ipc.AUTH, ipc.encode_json_and_body(head, b""))
        except StoreError as exc:
            logger.warning("webhook %s: %s", self.path, exc)
            return _UNAVAILABLE
        answer, body = ipc.decode_json_and_body(payload)
        if "trusted" in answer:
            return bool(answer["trusted"])
        return WebhookResponse(int(answer["status"]), body, answer.get("headers", {}))

    async def handle(self, request: WebhookRequest, emit: Emit) -> WebhookResponse:
        head = {
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers),
            "query": dict(request.query),
        }
        try:
            _, payload = await self.channel.request(
                ipc.WEBHOOK, ipc.encode_json_and_body(head, request.body)
            )
        except StoreError as exc:
            logger.warning("webhook %s: %s", self.path, exc)
            return _UNAVAILABLE
        answer, body = ipc.decode_json_and_body(payload)
        return WebhookResponse(int(answer["status"]), body, answer.get("headers", {}))


async def _no_emit(events: Sequence[Event], /) -> None:
    raise StoreError("webhooks are answered by the main process")


def _counters(metrics: Metrics) -> list[tuple[str, list[str], float]]:
    samples: list[tuple[str, list[str], float]] = []
    for family in metrics.registry.collect():
        if family.name not in COUNTERS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                samples.append((family.name, list(sample.labels.values()), sample.value))
    return samples


async def _report(channel: _Channel, metrics: Metrics, direct: DirectBrokers) -> None:
    """Counters every second; the direct brokers' readiness when it changes (the main
    process's ``/readyz`` includes it), checked every 0.1 s."""
    told: dict[str, bool] = {}
    ticks = 0
    while True:
        readiness = direct.readiness()
        if ticks % 10 == 0 or readiness != told:
            stats = {"counters": _counters(metrics), "direct": readiness}
            channel.send(ipc.STATS, json.dumps(stats).encode())
            told = readiness
        ticks += 1
        await asyncio.sleep(0.1)


async def _serve(config: dict[str, Any], factories: Mapping[str, DirectFactory]) -> None:
    loop = asyncio.get_running_loop()
    answer_timeout = float(config["ingress"].get("answer_timeout", ipc.ANSWER_TIMEOUT))
    channel = _Channel(answer_timeout)
    ipc_sock = socket.socket(fileno=config["ipc_fd"])
    await loop.create_connection(lambda: channel, sock=ipc_sock)
    brokers: dict[str, Publisher] = {key: RemoteBroker(key, channel) for key in config["brokers"]}
    direct = DirectBrokers()
    await direct.start(config.get("direct", []), factories, answer_timeout)
    direct.install(brokers, channel.tell)
    webhooks = [
        (RemoteWebhook(w["name"], w["path"], w["maxBodyBytes"], channel), _no_emit)
        for w in config["webhooks"]
    ]
    metrics = Metrics()
    auth = IngressAuth.from_json(config.get("auth", {}))
    ingress = Ingress(brokers, metrics, IngressSettings(**config["ingress"]), webhooks, auth)
    server = ingress.server()
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    fast = FastPath(ingress, server)

    channel.forget = lambda key: direct.forget(key, RemoteBroker(key, channel), brokers,
                                               fast.routes)  # fmt: skip
    listener = socket.socket(fileno=config["listen_fd"])
    tls = (
        ServerTls(Path(config["tls"]["cert"]), Path(config["tls"]["key"]))
        if config.get("tls")
        else None
    )
    context = server_context(tls) if tls is not None else None
    # Connections start on the fast path, which hands them to aiohttp's handler (the
    # runner's server) for anything but the hot request (eventing/ingress/fastpath.py).
    listening = await loop.create_server(fast, sock=listener, backlog=1024, ssl=context)
    if context is not None and tls is not None:
        reloader = asyncio.create_task(watch(context, tls), name="tls reload")
    channel.send(ipc.STATS, json.dumps({"ready": True, "direct": direct.readiness()}).encode())
    gc.collect()
    gc.freeze()  # see eventing.app.runtime.tune_gc
    gc.set_threshold(20_000, 20, 20)
    stages.start("worker")

    reporter = asyncio.create_task(_report(channel, metrics, direct), name="ingress worker stats")
    await channel.stop.wait()
    if channel.lost.is_set():
        os._exit(0)  # the main process is gone: answer nothing more, at once
    ingress.accepting = False
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    if context is not None:
        reloader.cancel()
    listening.close()  # stop accepting; in-flight requests are answered below
    await fast.shutdown(5.0)
    await runner.cleanup()
    await direct.close()
    channel.send(ipc.STATS, json.dumps({"counters": _counters(metrics)}).encode())


def main(factories: Mapping[str, DirectFactory] | None = None) -> None:
    """The worker process; ``factories`` build the brokers it publishes to itself
    (given by its composition root, ``eventing.app.ingress_worker``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when we stop
    config = json.loads(os.environ[ENV])
    logging.basicConfig(
        level=config.get("logLevel", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s",
    )
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    raise_open_file_limit()
    asyncio.run(_serve(config, factories or {}))


def worker_config(
    *,
    brokers: Sequence[str],
    webhooks: Sequence[Any],
    settings: IngressSettings,
    listen_fd: int,
    ipc_fd: int,
    log_level: str,
    auth: IngressAuth | None = None,
    tls: ServerTls | None = None,
    direct: Sequence[Mapping[str, Any]] = (),
) -> str:
    return json.dumps(
        {
            "brokers": list(brokers),
            "webhooks": [
                {
                    "name": w.name,
                    "path": w.path,
                    "maxBodyBytes": getattr(w, "max_body_bytes", settings.max_body_bytes),
                }
                for w in webhooks
            ],
            "ingress": asdict(settings),
            "listen_fd": listen_fd,
            "ipc_fd": ipc_fd,
            "logLevel": log_level,
            "auth": auth.to_json() if auth is not None else {},
            "tls": None if tls is None else {"cert": str(tls.cert), "key": str(tls.key)},
            "direct": list(direct),
        }
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
