"""How the generic webhook reads a request body (decisions in :mod:`sources.webhook.adapter`).

A request that already is a CloudEvent goes through the ingress codec
(:mod:`eventing.codec`), so a webhook and the broker ingress read CloudEvents the same
way: binary-mode data stays the exact body bytes, structured JSON is decoded once.
Anything else becomes ``(data, datacontenttype)`` here; only form bodies are rewritten
(into a JSON object), JSON is parsed only to refuse what is not JSON.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from eventing.codec import http as ce_http
from eventing.codec.jsonformat import parse_structured
from eventing.errors import InvalidEventError
from eventing.events import Event
from sources.support.base import WebhookRequest
from sources.support.webhook_fields import clean_text
from sources.support.webhook_http import Rejected, media_type


def as_cloudevent(request: WebhookRequest) -> Event | None:
    """The event when the request already is one (binary ``ce-`` headers or structured
    JSON), decoded by the ingress codec; ``None`` for any other request."""
    content_type = request.headers.get("content-type")
    try:
        mode = ce_http.detect_mode(content_type)
        if mode is ce_http.Mode.BATCH:
            raise Rejected(
                415,
                "batched CloudEvents are not accepted on a webhook; "
                "post them to the broker ingress",
            )
        if mode is ce_http.Mode.STRUCTURED:
            return parse_structured(request.body)
        if ce_http.has_ce_headers(request.headers):
            return ce_http.decode_binary(request.headers.items(), content_type, request.body)
    except ce_http.UnsupportedFormatError as exc:
        raise Rejected(415, str(exc)) from None
    except InvalidEventError as exc:
        raise Rejected(400, f"invalid CloudEvent: {str(exc)[:300]}") from None
    return None


def body_data(
    request: WebhookRequest, form_bodies: str = "json"
) -> tuple[bytes | None, str | None]:
    """``(data, datacontenttype)`` for a request that is not a CloudEvent."""
    if not request.body:
        return None, None
    kind = media_type(request)
    declared = clean_text(request.headers.get("content-type", "").strip(), 256)
    if kind == "application/json" or kind.endswith("+json"):
        try:
            json.loads(request.body)
        except (ValueError, RecursionError):
            raise Rejected(400, "body is not valid JSON") from None
        return request.body, declared
    if kind == "application/x-www-form-urlencoded":
        return (
            (form_as_json(request.body), "application/json")
            if form_bodies == "json"
            else (request.body, declared)
        )
    if kind.startswith("multipart/"):
        raise Rejected(415, "multipart bodies are not accepted; send JSON or a form")
    return request.body, declared or "application/octet-stream"


def form_as_json(body: bytes) -> bytes:
    """A form as a JSON object: a field sent once is a string, a repeated one a list."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=1000
        )
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "body is not valid application/x-www-form-urlencoded") from None
    fields: dict[str, str | list[str]] = {}
    for key, value in pairs:
        previous = fields.get(key)
        if previous is None:
            fields[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            fields[key] = [previous, value]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
