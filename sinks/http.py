"""Delivery to an HTTP subscriber (aiohttp), binary mode unless structured is asked.

Requests carry ``Prefer: reply``. A 200 whose response is a CloudEvent (binary ``ce-``
headers or a structured body) is a reply; a 202 never is. A response that claims to
be a CloudEvent but is not a valid one counts as a failed attempt (502), as Knative
treats it. The W3C ``traceparent`` extension is also sent as the HTTP header so
services with ordinary tracing middleware join the trace.
"""

from __future__ import annotations

import aiohttp

from eventing.codec import http as binding
from eventing.codec.jsonformat import parse_structured
from eventing.delivery.policy import parse_retry_after
from eventing.delivery.sink import Outcome
from eventing.errors import InvalidEventError
from eventing.events import Event

MAX_REPLY_BYTES = 1024 * 1024
_ERROR_BODY = 1024


class HttpSink:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.target = url
        self.url = url
        self.session = session

    async def wait_ready(self) -> None:
        return None

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        headers, body = (binding.encode_structured(event) if structured
                         else binding.encode_binary(event))
        headers["Prefer"] = "reply"
        traceparent = event.attributes.get("traceparent")
        if isinstance(traceparent, str):
            headers["traceparent"] = traceparent
        try:
            async with self.session.post(
                self.url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return await _outcome(response)
        except TimeoutError:
            return Outcome(None, error=f"timed out after {timeout:g}s")
        except aiohttp.ClientError as exc:
            return Outcome(None, error=f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        return None


async def _outcome(response: aiohttp.ClientResponse) -> Outcome:
    status = response.status
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status != 200:
        body = await response.content.read(_ERROR_BODY) if status >= 300 else b""
        return Outcome(status, retry_after=retry_after, body=body)
    content_type = response.headers.get("Content-Type")
    is_ce = binding.has_ce_headers(response.headers)
    mode = _mode(content_type)
    if not is_ce and mode != binding.Mode.STRUCTURED:
        return Outcome(status)
    data = await response.content.read(MAX_REPLY_BYTES + 1)
    if len(data) > MAX_REPLY_BYTES:
        return Outcome(502, error="reply larger than 1 MiB")
    try:
        if mode == binding.Mode.STRUCTURED:
            reply = parse_structured(data)
        else:
            reply = binding.decode_binary(response.headers.items(), content_type, data)
    except InvalidEventError as exc:
        return Outcome(502, error=f"malformed reply: {exc}"[:300], body=data[:_ERROR_BODY])
    return Outcome(status, reply=reply)


def _mode(content_type: str | None) -> binding.Mode:
    try:
        return binding.detect_mode(content_type)
    except InvalidEventError:
        return binding.Mode.BINARY


def new_session(limit: int = 1000) -> aiohttp.ClientSession:
    """One pooled client session for all HTTP sinks of a process."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=60)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                 skip_auto_headers=("User-Agent",))
