"""The CloudEvents JSON event format (``application/cloudevents+json``) and its batch
form (``application/cloudevents-batch+json``).

Reading turns ``data`` into bytes once: a JSON value under a JSON content type becomes
its compact JSON text, a string under any other content type its UTF-8 bytes, and
``data_base64`` its decoded bytes. Writing embeds JSON data bytes as they are (no
parse and re-encode) when the content type is JSON and the bytes are valid JSON,
text as a string, everything else as ``data_base64``.

Rules enforced on read (spec §3 and json-format §2-3): a top-level object; no
duplicate members; ``null`` means absent; attribute values are strings, booleans or
integers in the int32 range (``42.42`` and ``4247483647`` are rejected); ``data`` and
``data_base64`` are mutually exclusive. Extension names must already be lower-case
(``aString`` is rejected rather than silently lower-cased, and so is
``a_invalid_name``: the spec forbids both, and guessing hides sender bugs).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from itertools import accumulate
from typing import Any

from eventing.errors import InvalidEventError
from eventing.events import AttributeValue, Event, validate

_MAX_DEPTH = 64
# A JSON string, its escapes taken whole (linear: no backtracking), or an
# unterminated one up to the end; and every byte but a bracket or a quote.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def is_json_content_type(content_type: str | None) -> bool:
    """``*/json`` or ``*/*+json`` (parameters ignored, case-insensitive)."""
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


def _is_text_content_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media.endswith(("/xml", "+xml"))


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidEventError(f"duplicate JSON member {key[:40]!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidEventError(f"{name} is not valid JSON")


def loads(body: bytes) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate members, no NaN/Infinity, bounded depth."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEventError("body is not valid UTF-8") from None
    if _nesting_exceeds(text, _MAX_DEPTH):
        raise InvalidEventError(f"JSON nesting deeper than {_MAX_DEPTH} levels")
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"invalid JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # e.g. an integer beyond Python's int-conversion digit limit
        raise InvalidEventError(f"invalid JSON: {str(exc)[:80]}") from None
    except RecursionError:
        raise InvalidEventError("JSON nesting too deep") from None


def _nesting_exceeds(text: str, limit: int) -> bool:
    """A cheap pre-check so hostile input cannot drive the parser into deep recursion:
    whether the brackets outside strings nest deeper than ``limit``.

    Why not a loop over the characters: a batch of 100 events (100 KiB) holds hundreds
    of brackets, so the check runs on every batch, and a Python loop over each
    character cost ten times the parse itself (about half of an ingress worker's CPU
    per batched event). Here C does the passes over the text: ``translate`` keeps the
    quotes and brackets; without escapes the strings are every other piece between
    quotes; with escapes a regular expression cuts the strings out first. Only the
    brackets left are summed in Python. A string runs to its closing quote or,
    unterminated, to the end of the text."""
    raw = text.encode("utf-8", "surrogatepass")
    if "\\" in text:
        raw = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    kept = raw.translate(None, _NOT_STRUCTURAL)
    if kept.count(b"[") + kept.count(b"{") <= limit:
        return False
    brackets = b"".join(kept.split(b'"')[::2])
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def event_from_json(obj: Any) -> Event:
    """Build an :class:`Event` from one parsed structured-mode JSON object."""
    if not isinstance(obj, dict):
        raise InvalidEventError("a structured event must be a JSON object")
    attributes: dict[str, AttributeValue] = {}
    data: Any = None
    has_data = has_b64 = False
    for key, value in obj.items():
        if key == "data":
            has_data, data = True, value
        elif key == "data_base64":
            if value is not None:  # null means absent: it must not clobber `data`
                has_b64, data = True, value
        elif value is None:
            continue
        elif isinstance(value, (bool | str, int)):
            attributes[key] = value
        elif isinstance(value, float):
            raise InvalidEventError(
                f"attribute {key[:40]!r} = {value!r} is not a CloudEvents Integer"
            )
        else:
            raise InvalidEventError(f"attribute {key[:40]!r} must be a string, boolean or integer")
    if has_data and has_b64:
        raise InvalidEventError("'data' and 'data_base64' are mutually exclusive")
    validate(attributes)
    payload = _data_bytes(attributes, data, has_data, has_b64)
    return Event(attributes, payload)


def _data_bytes(
    attributes: dict[str, AttributeValue], data: Any, has_data: bool, has_b64: bool
) -> bytes | None:
    # 0.3's datacontentencoding describes the JSON `data` member, not the event: once
    # the bytes are decoded it no longer applies (left in place, binary mode would
    # claim the raw body is Base64). sdk-java reads it the same way.
    encoding = (
        attributes.pop("datacontentencoding", None)
        if attributes.get("specversion") == "0.3" and (has_data or has_b64)
        else None
    )
    if has_b64:
        if not isinstance(data, str):
            raise InvalidEventError("'data_base64' must be a string")
        return _b64decode(data, "data_base64")
    if not has_data:
        return None
    content_type = attributes.get("datacontenttype")
    if encoding is not None:
        if str(encoding).lower() != "base64" or not isinstance(data, str):
            raise InvalidEventError("datacontentencoding must be 'base64' with string data")
        return _b64decode(data, "data")
    if content_type is None:
        # Spec: absent datacontenttype with `data` means JSON; make it explicit so the
        # binary form on delivery carries it as Content-Type.
        attributes["datacontenttype"] = "application/json"
        content_type = "application/json"
    if is_json_content_type(str(content_type)):
        return dump_compact(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return dump_compact(data)


def _b64decode(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEventError(f"'{name}' is not valid Base64") from None


# Built once: json.dumps with any non-default option builds an encoder on every call,
# and this runs for the data of every event of a structured or batched request.
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dump_compact(value: Any) -> bytes:
    return _compact(value).encode("utf-8")


def parse_structured(body: bytes) -> Event:
    return event_from_json(loads(body))


def parse_batch(body: bytes) -> list[Any]:
    """The raw entries of a batch; each entry is decoded separately so one bad entry
    does not reject the others."""
    obj = loads(body)
    if not isinstance(obj, list):
        raise InvalidEventError("a batch must be a JSON array of events")
    return obj


def to_json_bytes(event: Event) -> bytes:
    """Encode one event in the JSON format, embedding JSON data without re-encoding."""
    head = json.dumps(event.attributes, separators=(",", ":"), ensure_ascii=False)
    data = event.data
    if data is None:
        return head.encode("utf-8")
    content_type = event.datacontenttype
    member: bytes
    if is_json_content_type(content_type) and _is_json(data):
        member = b'"data":' + data
    elif _is_text_content_type(content_type) and _is_utf8(data):
        member = b'"data":' + json.dumps(data.decode("utf-8"), ensure_ascii=False).encode()
    elif (
        event.attributes.get("specversion") == "0.3"
        and "datacontentencoding" not in event.attributes
    ):
        # 0.3 has no data_base64 member: its form is datacontentencoding + data.
        member = b'"datacontentencoding":"base64","data":"' + base64.b64encode(data) + b'"'
    else:
        # Also when datacontenttype is absent: a reader would take a `data` member as
        # JSON, so text would come back as a JSON string (json-format §3.1).
        member = b'"data_base64":"' + base64.b64encode(data) + b'"'
    prefix = head[:-1].encode("utf-8")
    separator = b"," if len(event.attributes) else b""
    return prefix + separator + member + b"}"


def _is_json(data: bytes) -> bool:
    """Whether ``data`` can be embedded as it is: UTF-8 JSON a strict reader accepts
    (``json.loads`` alone also takes UTF-16/32 bytes and NaN/Infinity)."""
    try:
        json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
