"""The HTTP side every webhook source shares: request bounds, answers, and the rule
that 2xx is sent only after the broker stored the event.

Status codes (the same for every webhook kind; docs/sources-webhooks.md):

* 202 the event is stored (body ``{"id": ...}``); 200 the request was valid but
  deliberately not stored (an event type the source does not subscribe to), counted in
  ``drops``;
* 400 malformed request; 401 failed authentication (nothing is stored); 404 an event
  kind the source does not know (GitHub, like Knative); 405 not POST; 413 body over
  the limit; 415 unsupported media type; 431 headers too large;
* 503 with ``Retry-After`` when the broker could not store (``StoreError``): the sender
  retries, and the event keeps its id so the retry deduplicates.

Handlers raise :class:`Rejected` from their pure mapping code; :func:`respond` turns it
into the answer. Messages never contain secrets or signatures.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from eventing.errors import InvalidEventError, PayloadTooLargeError, StoreError
from eventing.events import Event
from sources.support.base import Emit, SourceHealth, WebhookRequest, WebhookResponse

#: Bound on all request headers together (names + values); aiohttp's own per-field
#: limit is 8190 bytes, this bounds the sum a source looks through.
MAX_HEADER_BYTES: Final = 64 * 1024
_JSON: Final = {"Content-Type": "application/json"}


class Rejected(Exception):
    """A request the source refuses; ``status`` and a safe ``message`` for the sender."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class Ignored(Exception):
    """A valid request the source drops on purpose (answered 200, counted by reason)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def answer(
    status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None
) -> WebhookResponse:
    return WebhookResponse(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode("utf-8"),
        headers={**_JSON, **(headers or {})},
    )


def check_bounds(request: WebhookRequest, max_body_bytes: int) -> None:
    """Method, header size and body size; raise :class:`Rejected` when out of bounds.

    The server should already stop reading at ``max_body_bytes`` (each webhook source
    exposes it); this check keeps the source safe if it did not."""
    if request.method.upper() != "POST":
        raise Rejected(405, "only POST is allowed", {"Allow": "POST"})
    size = sum(len(k) + len(v) for k, v in request.headers.items())
    if size > MAX_HEADER_BYTES:
        raise Rejected(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
    if len(request.body) > max_body_bytes:
        raise Rejected(413, f"request body exceeds the limit of {max_body_bytes} bytes")


def media_type(request: WebhookRequest) -> str:
    """The lower-cased media type of ``Content-Type`` without parameters ('' if absent)."""
    raw = request.headers.get("content-type", "")
    return raw.split(";", 1)[0].strip().lower()


def parse_json_object(body: bytes, what: str = "body") -> dict[str, object]:
    """``body`` as a JSON object, or :class:`Rejected` 400."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise Rejected(400, f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Rejected(400, f"{what} must be a JSON object")
    return value


def refuse(health: SourceHealth, rejected: Rejected) -> WebhookResponse:
    health.refused += 1
    return answer(rejected.status, {"error": rejected.message}, rejected.headers)


def ignore(drops: Counter[str], ignored: Ignored) -> WebhookResponse:
    drops[ignored.reason] += 1
    return answer(200, {"ignored": ignored.message})


async def emit_and_answer(
    emit: Emit, events: Sequence[Event], health: SourceHealth
) -> WebhookResponse:
    """Store ``events``, then answer 202; 503 + Retry-After when the broker cannot."""
    try:
        await emit(events)
    except StoreError as exc:
        health.failed += 1
        health.last_error = f"broker could not store: {type(exc).__name__}"
        retry_after = max(1, math.ceil(exc.retry_after))
        return answer(
            503,
            {"error": "the broker could not store the event; retry later"},
            {"Retry-After": str(retry_after)},
        )
    except PayloadTooLargeError:
        health.refused += 1
        return answer(413, {"error": "the event is larger than the broker accepts"})
    except InvalidEventError as exc:
        health.refused += 1
        return answer(400, {"error": f"invalid event: {str(exc)[:300]}"})
    health.emitted += len(events)
    if health.state != "connected":
        health.set_state("connected")
    ids = [e.id for e in events]
    return answer(202, {"id": ids[0]} if len(ids) == 1 else {"ids": ids})


async def serve(
    request: WebhookRequest,
    emit: Emit,
    *,
    health: SourceHealth,
    drops: Counter[str],
    max_body_bytes: int,
    make_event: Callable[[], Event],
) -> WebhookResponse:
    """What every webhook adapter does with a request: check its bounds, let
    ``make_event`` authenticate and map it (raising :class:`Rejected` or
    :class:`Ignored`), then store the event and answer."""
    health.received += 1
    try:
        check_bounds(request, max_body_bytes)
        event = make_event()
    except Rejected as rejected:
        return refuse(health, rejected)
    except Ignored as ignored:
        return ignore(drops, ignored)
    return await emit_and_answer(emit, [event], health)
