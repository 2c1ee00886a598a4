"""``data.`` paths: our extension of CESQL that reads the event's JSON data.

Not part of CESQL v1.0 (which sees attributes only) and not in Knative: a trigger opts
in by writing a path such as ``data.order.total`` in a ``cesql`` filter. Only then does
its broker hand it the data (:data:`eventing.broker.routing.NEEDS_DATA`), parsed once
per event for all such triggers, and only for events that reach the expression.

What a path reads (docs/cesql.md has the table):

- the data is JSON when ``datacontenttype`` is absent, ``application/json``,
  ``text/json`` or any ``.../...+json``; anything else, data larger than
  :data:`MAX_PAYLOAD_BYTES`, nested deeper than :data:`MAX_DEPTH`, or invalid JSON is
  "not JSON": every path is missing (``EXISTS`` is false, a value is a
  ``missingAttribute`` error, so the event does not match);
- segments name object members (letters, digits, ``_``); a segment of digits also
  indexes an array;
- a JSON string is a String, ``true``/``false`` a Boolean, an integer within 32 bits
  an Integer; any other number is the String of its JSON text (``9.99``, so compare
  it as a string or cast it), ``null`` is missing, an object or array is missing
  (``EXISTS`` sees it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from triggers.cesql.errors import CesqlError, ErrorKind
from triggers.cesql.values import INT32_MAX, INT32_MIN, Errors, Value

#: Where the parsed payload sits in the attribute view a data filter evaluates
#: (not a valid attribute name, so no event can set it).
PAYLOAD_KEY: Final = "data."
MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_DEPTH: Final = 32
MAX_SEGMENTS: Final = 16

_JSON_TYPE = re.compile(r"\s*(application/json|text/json|[\w.+-]+/[\w.+-]+\+json)\s*(;.*)?\Z", re.I)
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


class NotJson:
    """The payload when the data cannot be read as JSON, and why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_ABSENT: Final = NotJson("the event has no data")


def parse_payload(attributes: Mapping[str, object], data: bytes | None) -> object:
    """The event's data as parsed JSON, or a :class:`NotJson` saying why not."""
    if data is None:
        return _ABSENT
    content_type = attributes.get("datacontenttype")
    if content_type is not None and not _JSON_TYPE.match(str(content_type)):
        return NotJson(f"datacontenttype {str(content_type)[:60]!r} is not JSON")
    if len(data) > MAX_PAYLOAD_BYTES:
        return NotJson(f"data is larger than {MAX_PAYLOAD_BYTES} bytes")
    if not _shallow(data):
        return NotJson(f"data is nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return NotJson("data is not valid JSON")


def _shallow(data: bytes) -> bool:
    """Nesting of ``data`` is at most :data:`MAX_DEPTH` (brackets inside strings do
    not count). Cheap when there are few brackets, which is the common case."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return True
    depth = 0
    in_string = False
    skip_to = 0  # the byte after a backslash is escaped
    for match in _STRUCTURE.finditer(data):
        at = match.start()
        if at < skip_to:
            continue
        char = data[at]
        if in_string:
            if char == 0x5C:  # backslash
                skip_to = at + 2
            elif char == 0x22:  # quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif char in (0x5D, 0x7D):  # ] }
            depth -= 1
    return True


def lookup(payload: object, segments: Sequence[str], path: str, errors: Errors) -> Value | None:
    """The CESQL value at ``segments``; None (after recording the error) when missing."""
    found = _walk(payload, segments)
    if isinstance(found, NotJson):
        errors.append(CesqlError(ErrorKind.MISSING_ATTRIBUTE, f"{path}: {found.reason}"))
        return None
    value = _value(found)
    if value is None:
        what = "missing" if found is None else f"a JSON {_kind(found)}, not a value"
        errors.append(CesqlError(ErrorKind.MISSING_ATTRIBUTE, f"{path} is {what}"))
    return value


def exists(payload: object, segments: Sequence[str]) -> bool:
    found = _walk(payload, segments)
    return found is not None and not isinstance(found, NotJson)


def _walk(payload: object, segments: Sequence[str]) -> object:
    if payload is None:
        return NotJson("the event's data was not given to this filter")
    current = payload
    for segment in segments:
        if isinstance(current, NotJson):
            return current
        if isinstance(current, dict):
            current = current.get(segment)
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return None
    return current


def _value(found: object) -> Value | None:
    if found.__class__ is str or found.__class__ is bool:
        return found
    if found.__class__ is int:
        number: int = found
        return number if INT32_MIN <= number <= INT32_MAX else str(number)
    if found.__class__ is float:
        return json.dumps(found)
    return None


def _kind(found: object) -> str:
    return "object" if isinstance(found, dict) else "array"


def data_view(
    attributes: Mapping[str, object], data: bytes | None, scratch: dict[str, object]
) -> Mapping[str, object]:
    """The attributes plus the parsed payload, made once per event: ``scratch`` is the
    per-event dict the broker shares between the event's data filters."""
    view = scratch.get("cesql.view")
    if view is None:
        view = {**attributes, PAYLOAD_KEY: parse_payload(attributes, data)}
        scratch["cesql.view"] = view
    return view  # type: ignore[return-value]
