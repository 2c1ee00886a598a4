"""The broker ingress: ``POST /<namespace>/<broker>``, answered as Knative's is.

Checks in order, each failure one status: method (405; OPTIONS answered with
``Allow: POST, OPTIONS`` and the webhook abuse-protection headers), path (404),
declared size (413 before reading), body read within a deadline (408 for slow
clients), mode and format (415 for a non-JSON structured format), the event (400),
then storage: 202 only once stored; 503 with ``Retry-After`` when the store is
full or unavailable. Batches (``application/cloudevents-batch+json``) are answered
per entry in a JSON body.

Webhook sources are served on the same server under their own paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from eventing import stages
from eventing.broker.base import Publisher
from eventing.broker.stamps import now_rfc3339, stamp
from eventing.codec import http as binding
from eventing.codec.content_encoding import EncodingError, content_coding, decode
from eventing.codec.jsonformat import event_from_json, parse_batch, parse_structured
from eventing.connections import GuardedServer
from eventing.errors import InvalidEventError, StoreError, StoreFullError
from eventing.events import Event
from eventing.ingress.auth import IngressAuth
from eventing.metrics import Metrics
from eventing.sourcing import Emit, WebhookRequest, WebhookResponse, WebhookSource

logger = logging.getLogger(__name__)

_OPTIONS_HEADERS = {
    "Allow": "POST, OPTIONS",
    "WebHook-Allowed-Origin": "*",
    "WebHook-Allowed-Rate": "*",
}


@dataclass
class IngressSettings:
    max_body_bytes: int = 1024 * 1024
    """Largest request body accepted (413 above it)."""
    max_batch_events: int = 1000
    """Most events in one batched request."""
    read_timeout: float = 30.0
    """Seconds a client may take to send its body (408 after)."""
    idle_timeout: float = 15.0
    """Seconds a connection may stay open without a complete request head (after it
    opened or after the previous answer): slow or idle clients are closed."""
    max_connections: int = 4096
    """Open connections per process (the main one, or each ingress worker); more are
    answered 503 and closed."""
    max_unauthenticated_reads: int = 4
    """Webhook bodies read at once before their sender is authenticated (sources that
    sign the body); more wait, and get 503 after the read deadline."""
    answer_timeout: float = 30.0
    """Seconds an ingress worker waits for the main process to answer a request it
    forwarded (503 with Retry-After after)."""


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_response(status, {"error": message}, headers)


class Ingress:
    def __init__(
        self,
        brokers: Mapping[str, Publisher],
        metrics: Metrics,
        settings: IngressSettings | None = None,
        webhooks: Sequence[tuple[WebhookSource, Emit]] = (),
        auth: IngressAuth | None = None,
    ) -> None:
        self.brokers = brokers
        self.auth = auth or IngressAuth()
        self.metrics = metrics
        self.settings = settings or IngressSettings()
        self.webhooks = {source.path: (source, emit) for source, emit in webhooks}
        self.accepting = True
        self._unauthenticated = asyncio.Semaphore(self.settings.max_unauthenticated_reads)
        self._received: dict[tuple[str, str], Any] = {}  # labelled children, looked up once

    def app(self) -> web.Application:
        """The ingress as an aiohttp application (for tests and embedding); serve it
        with ``auto_decompress=False`` (the ingress decodes bodies itself)."""
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def server(self) -> GuardedServer:
        """The ingress as aiohttp's low-level server: no router or middleware chain on
        the hot path, as :meth:`handle` dispatches on the path itself."""
        return GuardedServer(
            self.handle,
            max_connections=self.settings.max_connections,
            idle_timeout=self.settings.idle_timeout,
            access_log=None,
            lingering_time=1.0,
            auto_decompress=False,
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        hook = self.webhooks.get(request.path)
        if hook is not None:
            return await self._webhook(request, *hook)
        parts = [p for p in request.path.split("/") if p]
        if len(parts) != 2:
            return error(404, "not found: post events to /<namespace>/<broker>")
        broker = self.brokers.get(f"{parts[0]}/{parts[1]}")
        if broker is None:
            return error(404, f"no broker {parts[1]!r} in namespace {parts[0]!r}")
        if request.method == "OPTIONS":
            return web.Response(status=200, headers=_OPTIONS_HEADERS)
        if request.method != "POST":
            return error(405, "method not allowed: use POST", {"Allow": "POST, OPTIONS"})
        if self.auth:
            refused = self._authorize(broker.key, request)
            if refused is not None:
                self.metrics.rejected.labels(broker.key, str(refused.status)).inc()
                return refused
        return await self._produce(request, broker)

    def _authorize(self, key: str, request: web.BaseRequest) -> web.Response | None:
        """The ingress's own authentication (:mod:`eventing.ingress.auth`), from the
        headers, before the body is read."""
        status, why = self.auth.check(key, request.headers.get("Authorization"))
        if status == 0:
            return None
        challenge = {"WWW-Authenticate": f'Bearer realm="{key}"'} if status == 401 else None
        return error(status, why, challenge)

    async def _read(
        self, request: web.BaseRequest, limit: int | None = None
    ) -> bytes | web.Response:
        """The body, decoded per ``Content-Encoding`` (see
        :mod:`eventing.codec.content_encoding`), at most ``limit`` bytes before and
        after decoding, within the read deadline; or the error response."""
        limit = self.settings.max_body_bytes if limit is None else limit
        try:
            coding = content_coding(request.headers.get("Content-Encoding"))
        except EncodingError as exc:
            return error(exc.status, exc.message)
        length = request.content_length
        if length is not None and length > limit:
            return error(413, f"body larger than {limit} bytes")
        content = request.content
        try:
            if length is not None and content.is_eof():
                # The whole body arrived with the headers (the common case for events):
                # take it without arming a read deadline.
                raw = content.read_nowait(-1)
            else:
                async with asyncio.timeout(self.settings.read_timeout):
                    chunks: list[bytes] = []
                    size = 0
                    while size <= limit:
                        chunk = await content.read(limit + 1 - size)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        size += len(chunk)
                raw = b"".join(chunks)
        except TimeoutError:
            return error(408, f"body not received within {self.settings.read_timeout:g}s")
        except (RequestPayloadError, HttpProcessingError):
            return error(400, "malformed request body (framing or transfer encoding)")
        if len(raw) > limit:
            return error(413, f"body larger than {limit} bytes")
        try:
            return decode(coding, raw, limit)
        except EncodingError as exc:
            return error(exc.status, exc.message)

    async def _produce(self, request: web.BaseRequest, broker: Publisher) -> web.Response:
        body = await self._read(request)
        if isinstance(body, web.Response):
            self.metrics.rejected.labels(broker.key, str(body.status)).inc()
            return body
        if not self.accepting:
            return error(503, "shutting down", {"Retry-After": "5"})
        content_type = request.headers.get("Content-Type")
        try:
            mode = binding.detect_mode(content_type)
            if mode is binding.Mode.BATCH:
                return await self._batch(broker, body)
            if mode is binding.Mode.STRUCTURED:
                event = parse_structured(body)
            else:
                event = binding.decode_binary(request.headers.items(), content_type, body)
            stamp(event, now_rfc3339())
            if stages.ON:
                stages.mark("ingress received", event)
        except binding.UnsupportedFormatError as exc:
            return self._reject(broker, 415, str(exc))
        except InvalidEventError as exc:
            return self._reject(broker, 400, str(exc))
        stored = await self.store(broker, [event])
        if stored is not None:
            return stored
        self.count_received(broker.key, mode.value)
        if stages.ON:
            stages.mark("ingress answers 202", event)
        return web.Response(status=202)

    def count_received(self, key: str, mode: str) -> None:
        counter = self._received.get((key, mode))
        if counter is None:
            counter = self._received[(key, mode)] = self.metrics.received.labels(key, mode)
        counter.inc()

    def _reject(self, broker: Publisher, status: int, message: str) -> web.Response:
        self.metrics.rejected.labels(broker.key, str(status)).inc()
        return error(status, message)

    async def store(self, broker: Publisher, events: list[Event]) -> web.Response | None:
        """Publish; None once stored, else the answer (503 with Retry-After)."""
        try:
            await broker.publish(events)
        except StoreError as exc:
            return self.refused(broker, exc)
        return None

    def refused(self, broker: Publisher, exc: StoreError) -> web.Response:
        """The answer to a publish the broker refused (logged, counted): 503."""
        if isinstance(exc, StoreFullError):
            logger.warning("broker %s is full: %s", broker.key, exc)
            return self._unavailable(broker, "the broker's store is full", exc.retry_after)
        logger.error("broker %s cannot store: %s", broker.key, exc)
        return self._unavailable(broker, "the broker cannot store events now", exc.retry_after)

    def _unavailable(self, broker: Publisher, message: str, retry_after: float) -> web.Response:
        self.metrics.rejected.labels(broker.key, "503").inc()
        return error(503, message, {"Retry-After": str(max(1, round(retry_after)))})

    async def _batch(self, broker: Publisher, body: bytes) -> web.Response:
        entries = parse_batch(body)
        if len(entries) > self.settings.max_batch_events:
            return self._reject(
                broker,
                413,
                f"batch holds {len(entries)} events (limit {self.settings.max_batch_events})",
            )
        results: list[dict[str, Any]] = []
        accepted: list[Event] = []
        arrival = now_rfc3339()
        first_version: object = None
        for index, entry in enumerate(entries):
            try:
                event = event_from_json(entry)
                if first_version is None:
                    first_version = event.specversion
                elif event.specversion != first_version:
                    raise InvalidEventError("all events in a batch must share specversion")
                stamp(event, arrival)
            except InvalidEventError as exc:
                results.append({"index": index, "status": 400, "error": str(exc)})
                continue
            accepted.append(event)
            results.append({"index": index, "id": event.id, "status": 202})
        if accepted:
            stored = await self.store(broker, accepted)
            if stored is not None:
                return stored
            self.metrics.received.labels(broker.key, "batch").inc(len(accepted))
        rejected = len(entries) - len(accepted)
        if rejected:
            self.metrics.rejected.labels(broker.key, "400").inc(rejected)
        status = 202 if not rejected else (207 if accepted else 400)
        return json_response(
            status, {"accepted": len(accepted), "rejected": rejected, "results": results}
        )

    async def _webhook(
        self, request: web.BaseRequest, source: WebhookSource, emit: Emit
    ) -> web.StreamResponse:
        headers = unique_headers(request.headers.items())
        if isinstance(headers, str):
            self.metrics.webhook_refused.labels(source.name, "400").inc()
            return error(400, f"duplicate {headers} header")
        if self.auth:
            refused = self._authorize(source.path, request)
            if refused is not None:
                self.metrics.webhook_refused.labels(source.name, str(refused.status)).inc()
                return refused
        if not self.accepting:
            return error(503, "shutting down", {"Retry-After": "5"})
        incoming = WebhookRequest(
            method=request.method,
            path=request.path,
            headers=headers,
            body=b"",
            query=dict(request.query),
        )
        try:
            # Authenticate what can be before reading the body (tokens); a source that
            # needs the body (an HMAC) reads it under the bound on unauthenticated reads.
            verdict = await _preauthenticate(source, incoming)
            if isinstance(verdict, WebhookResponse):
                self.metrics.webhook_refused.labels(source.name, str(verdict.status)).inc()
                return _response(verdict)
            trusted = verdict
            async with contextlib.AsyncExitStack() as stack:
                if not trusted:
                    try:
                        async with asyncio.timeout(self.settings.read_timeout):
                            await stack.enter_async_context(self._unauthenticated)
                    except TimeoutError:
                        return error(503, "too many unauthenticated requests", {"Retry-After": "5"})
                body = await self._read(request, getattr(source, "max_body_bytes", None))
                if isinstance(body, web.Response):
                    self.metrics.webhook_refused.labels(source.name, str(body.status)).inc()
                    return body
                result = await source.handle(replace(incoming, body=body), emit)
        except Exception:  # a bug in a handler: still one answer, and the server lives on
            logger.exception("webhook %s failed", request.path)
            return error(500, "internal error")
        return _response(result)


#: Headers a request may repeat (their values are lists by definition). Any other
#: header sent twice to a webhook is refused: with two signatures or tokens, which one
#: a check reads must never be the sender's choice.
LIST_HEADERS: Final = frozenset(
    {
        "accept", "accept-encoding", "accept-language", "cache-control", "connection",
        "forwarded", "pragma", "te", "trailer", "via", "warning", "x-forwarded-for",
        "x-forwarded-host", "x-forwarded-proto", "cookie",
    }
)  # fmt: skip


def unique_headers(items: Iterable[tuple[str, str]]) -> dict[str, str] | str:
    """The headers as a dict with lower-cased names, or the name of a header that
    appears twice (other than :data:`LIST_HEADERS`, whose values are joined)."""
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in headers:
            if key not in LIST_HEADERS:
                return name
            headers[key] = f"{headers[key]}, {value}"
        else:
            headers[key] = value
    return headers


async def _preauthenticate(
    source: WebhookSource, request: WebhookRequest
) -> WebhookResponse | bool:
    """The source's verdict from the headers alone (its optional ``authenticate``): a
    refusal to send, True when the headers authenticate the sender (a token), False
    when only the body can tell (an HMAC) or the source does not check."""
    check = getattr(source, "authenticate", None)
    if check is None:
        return False
    verdict: WebhookResponse | bool = await check(request)
    return verdict


def _response(result: WebhookResponse) -> web.Response:
    return web.Response(status=result.status, body=result.body, headers=dict(result.headers))
