"""Delivery to an HTTP subscriber, binary mode unless structured is asked.

Requests carry ``Prefer: reply``. A 200 whose response is a CloudEvent (binary ``ce-``
headers or a structured body) is a reply; a 202 never is. A response that claims to
be a CloudEvent but is not a valid one counts as a failed attempt (502), as Knative
treats it. The W3C ``traceparent`` extension is also sent as the HTTP header so
services with ordinary tracing middleware join the trace.

Plain ``http://`` subscribers go through the lean keep-alive client of
:mod:`sinks.httpclient` (the hot path); ``https://`` ones through aiohttp, which
brings TLS.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import aiohttp

from eventing.codec import http as binding
from eventing.codec.jsonformat import parse_structured, to_json_bytes
from eventing.delivery.policy import parse_retry_after
from eventing.delivery.sink import Outcome
from eventing.errors import InvalidEventError
from eventing.events import Event
from eventing.tls import ClientTls, client_context
from sinks.hostslots import NoSlotError
from sinks.httpclient import HttpError, Pool, Response, Target

MAX_REPLY_BYTES = 1024 * 1024
_ERROR_BODY = 1024
_NO_CONTENT_TYPE = ("Content-Type",)
_STRUCTURED_HEAD = f"Content-Type: {binding.STRUCTURED_JSON}\r\n".encode()
PREFER_REPLY = b"Prefer: reply\r\n"
"""The fixed line of every delivery request (:meth:`Target.with_fixed`): a reply is
welcome."""
_SUCCESS = {status: Outcome(status) for status in range(200, 300)}
"""The outcome of a 2xx without a reply or ``Retry-After``, made once per status
(outcomes are frozen): what nearly every delivery gets."""


_SECRET_QUERY = re.compile(r"(?i)(token|key|secret|password|passwd|sig|signature|auth)")


def redact_url(url: str) -> str:
    """``url`` as shown to people (stdout, status, ``knativeerrordest``, logs): the
    user and password of ``user:pass@`` and the values of query parameters named
    like a credential (token, key, secret, password, sig, auth) become ``redacted``."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None and not parts.query:
            return url
        host = parts.netloc.rpartition("@")[2]
        netloc = f"redacted@{host}" if "@" in parts.netloc else host
        query = urlencode(
            [
                (k, "redacted" if _SECRET_QUERY.search(k) else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ]
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparseable URL>"


def basic_auth(url: str) -> str | None:
    """``Authorization: Basic`` for the ``user:pass@`` of ``url`` (None without one),
    as curl and aiohttp send it."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class HttpSink:
    __slots__ = ("_auth", "_host", "_plain", "pool", "session", "target", "url")

    def __init__(self, url: str, pool: Pool, session: aiohttp.ClientSession) -> None:
        self.target = redact_url(url)
        self.url = url
        self.pool = pool
        self.session = session
        self._plain = Target.parse(url) if url.startswith("http://") else None
        self._auth = basic_auth(url) if self._plain is not None else None
        if self._plain is not None:
            # The lines every request to this subscriber carries, encoded once.
            fixed = PREFER_REPLY
            if self._auth is not None:
                fixed += f"Authorization: {self._auth}\r\n".encode()
            self._plain = shared_target(self._plain.with_fixed(fixed))
        parts = urlsplit(url)
        self._host = (parts.hostname or "", parts.port or 443)
        """The https host's key in the pool's per-host connection limit."""

    async def wait_ready(self) -> None:
        return None

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        if self._plain is not None:
            head, body = request_head(event, structured)
            return await post_head(self.pool, self._plain, head, body, timeout)
        headers, body = prepare(event, structured)
        return await self._send_tls(headers, body, timeout)

    def try_send(
        self, event: Event, *, timeout: float, structured: bool, done: Callable[[Outcome], None]
    ) -> bool:
        """The delivery fast path: send on an idle keep-alive connection and call
        ``done`` with the outcome later, without a task; False if it cannot right now."""
        target = self._plain
        if target is None:
            return False
        pool = self.pool
        conn = pool.idle_connection(target)
        if conn is None:
            return False  # before encoding: at a full host that would be wasted
        try:
            head, body = request_head(event, structured)
        except BaseException:
            pool.give_back(target, conn)  # an event that cannot be encoded keeps no connection
            raise

        def answered(result: Response | BaseException) -> None:
            done(_as_outcome(result, timeout))

        pool.post_on(conn, target, head, body, timeout, answered)
        return True

    def when_free(self, wake: Callable[[], None]) -> bool:
        """After a ``try_send`` that sent nothing: have ``wake`` called in turn when the
        subscriber's host has a connection free (the pool's limit is shared by every
        trigger); False when waiting would not help (use ``send``)."""
        target = self._plain
        return target is not None and self.pool.slots.when_free(target.key, wake)

    async def _send_tls(self, headers: dict[str, str], body: bytes, timeout: float) -> Outcome:
        """Through aiohttp (which brings TLS), holding one of the host's connection
        slots of the pool: the wait for a slot is ours, so it ends with the pool's
        ``stop_queueing`` at the start of a drain (aiohttp's connector queue cannot be
        told to stop; its waiters were only cancelled at the drain deadline)."""
        slots = self.pool.slots
        try:
            await slots.acquire(self._host, self.pool.loop().time() + timeout)
        except TimeoutError:
            return Outcome(None, error=f"timed out after {timeout:g}s")
        except NoSlotError:
            return Outcome(None, error="not sent: the process is stopping")
        try:
            return await self._post_tls(headers, body, timeout)
        finally:
            slots.release(self._host)

    async def _post_tls(self, headers: dict[str, str], body: bytes, timeout: float) -> Outcome:
        try:
            async with self.session.post(
                self.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
                # An event without datacontenttype goes without Content-Type; aiohttp
                # would otherwise add application/octet-stream, inventing an attribute.
                skip_auto_headers=None if "Content-Type" in headers else _NO_CONTENT_TYPE,
            ) as response:
                data = await response.content.read(MAX_REPLY_BYTES + 1)
                return outcome(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, data
                )
        except TimeoutError:
            return Outcome(None, error=f"timed out after {timeout:g}s")
        except aiohttp.ClientError as exc:
            return Outcome(None, error=f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        return None


@lru_cache(maxsize=4096)
def shared_target(target: Target) -> Target:
    """One object for every equal target (targets are frozen values: the cache hands
    back the first equal one it was given). Why: a thousand triggers delivering to one
    subscriber read its target for every request; one shared object stays in the CPU's
    caches where a thousand equal copies would each be a cold read. Called when a sink
    is made, not per request; bounded by the cache's size."""
    return target


def _as_outcome(result: Response | BaseException, timeout: float) -> Outcome:
    if isinstance(result, TimeoutError):
        return Outcome(None, error=f"timed out after {timeout:g}s")
    if isinstance(result, BaseException):
        return Outcome(None, error=str(result)[:300])
    return outcome(result.status, result.headers, result.body)


def request_head(event: Event, structured: bool) -> tuple[bytes, bytes]:
    """The per-event header lines (bytes, each ending CRLF) and body of a delivery
    request, binary mode unless ``structured``: the same headers as :func:`prepare`
    but those every request to the subscriber carries (the target's fixed lines)."""
    if structured:
        head, body = _STRUCTURED_HEAD, to_json_bytes(event)
    else:
        head, body = binding.binary_head(event), event.data or b""
    traceparent = event.attributes.get("traceparent")
    if isinstance(traceparent, str):
        head += b"traceparent: " + traceparent.encode() + b"\r\n"
    return head, body


def prepare(event: Event, structured: bool) -> tuple[dict[str, str], bytes]:
    """Headers and body of a delivery request (binary mode unless ``structured``)."""
    headers, body = binding.encode_structured(event) if structured else binding.encode_binary(event)
    headers["Prefer"] = "reply"
    traceparent = event.attributes.get("traceparent")
    if isinstance(traceparent, str):
        headers["traceparent"] = traceparent
    return headers, body


async def post_head(
    pool: Pool, target: Target, head: bytes, body: bytes, timeout: float
) -> Outcome:
    """One POST over the lean keep-alive client, as an :class:`Outcome` (``head``: the
    header lines beyond the target's fixed ones)."""
    try:
        response = await pool.post_head(target, head, body, timeout)
    except TimeoutError:
        return Outcome(None, error=f"timed out after {timeout:g}s")
    except HttpError as exc:
        return Outcome(None, error=str(exc)[:300])
    return outcome(response.status, response.headers, response.body)


def outcome(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """Interpret a subscriber's response (``headers`` with lower-case names)."""
    if 200 < status < 300 and "retry-after" not in headers:
        return _SUCCESS[status]
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status != 200:
        return Outcome(
            status, retry_after=retry_after, body=body[:_ERROR_BODY] if status >= 300 else b""
        )
    content_type = headers.get("content-type")
    mode = _mode(content_type)
    if "ce-specversion" not in headers and mode != binding.Mode.STRUCTURED:
        return _SUCCESS[status]
    if len(body) > MAX_REPLY_BYTES:
        return Outcome(502, error="reply larger than 1 MiB")
    try:
        if mode == binding.Mode.STRUCTURED:
            reply = parse_structured(body)
        else:
            reply = binding.decode_binary(headers.items(), content_type, body)
    except InvalidEventError as exc:
        return Outcome(502, error=f"malformed reply: {exc}"[:300], body=body[:_ERROR_BODY])
    return Outcome(status, reply=reply)


def _mode(content_type: str | None) -> binding.Mode:
    try:
        return binding.detect_mode(content_type)
    except InvalidEventError:
        return binding.Mode.BINARY


def new_session(tls: ClientTls | None = None) -> aiohttp.ClientSession:
    """One pooled aiohttp session for the ``https://`` sinks of a process; ``tls``
    names the CA bundle to trust and a client certificate to present. No limit of
    its own: the sinks hold a slot of the delivery pool's per-host limit, which
    queues (and stops queueing at shutdown) as for plain http."""
    context = client_context(tls) if tls is not None else True
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=60, ssl=context)
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
    )
