"""CESQL type casts (spec v1.0 section 3.7) and attribute value normalisation.

Every cast is total: a failed cast appends a ``cast`` error and yields the zero
value of the target type.  The rules are the spec's, written out because
Python's own conversions are too lenient for them:

* String -> Integer: optional ``+``/``-`` then ASCII digits only (``int()``
  would also accept spaces, ``_`` separators and non-ASCII digits), and the
  result must fit in 32 bits.  The digit count is checked before ``int()`` so a
  64 KiB digit string costs nothing (and never hits Python's int-string limit).
* String -> Boolean: the lower-cased string is exactly ``true`` or ``false``.
* Integer -> Boolean: ``0`` is false, anything else true.  Boolean -> Integer:
  ``1``/``0``.  Boolean -> String: ``"true"``/``"false"``.  Integer -> String:
  base 10, no leading zeros.

Attribute values arrive from the broker as ``str`` (HTTP headers) or as
``int``/``bool`` (structured JSON extensions).  Anything else a caller might
pass is represented as a String, as spec section 3.2 requires for values that
are not CESQL primitives; ``None`` counts as absent (JSON ``null`` means unset).
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Callable

from triggers.cesql.errors import CesqlError, ErrorKind
from triggers.cesql.values import INT32_MAX, INT32_MIN, Errors, Value

__all__ = [
    "CASTS",
    "can_cast",
    "normalize_attribute",
    "short",
    "to_bool",
    "to_int",
    "to_str",
]

_INTEGER = re.compile(r"[+-]?([0-9]+)")
_MAX_INT_DIGITS = 10  # 2147483648 has 10 digits; more significant digits always overflow
_SHORT = 40


def short(value: object) -> str:
    """``repr`` of a value for error messages, cut so hostile input stays small."""
    if isinstance(value, str) and len(value) > _SHORT:
        return repr(value[:_SHORT]) + f"... ({len(value)} chars)"
    return repr(value)


def _cast_error(value: object, target: str, why: str, errors: Errors) -> None:
    errors.append(CesqlError(ErrorKind.CAST, f"cannot cast {short(value)} to {target}: {why}"))


def str_to_int(text: str, errors: Errors) -> int:
    """Parse a 32-bit base-10 integer with optional sign; 0 and a cast error otherwise."""
    if len(text) < 10 and text.isdigit() and text.isascii():  # fast path: fits in 31 bits
        return int(text)
    match = _INTEGER.fullmatch(text)
    if match is None:
        _cast_error(text, "Integer", "not a base-10 integer", errors)
        return 0
    if len(match.group(1).lstrip("0")) > _MAX_INT_DIGITS:
        _cast_error(text, "Integer", "out of the 32-bit range", errors)
        return 0
    number = int(text)
    if number < INT32_MIN or number > INT32_MAX:
        _cast_error(text, "Integer", "out of the 32-bit range", errors)
        return 0
    return number


def str_to_bool(text: str, errors: Errors) -> bool:
    """``true``/``false`` in any letter case; false and a cast error otherwise."""
    if len(text) in (4, 5):
        lowered = text.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    _cast_error(text, "Boolean", "expected 'true' or 'false'", errors)
    return False


def to_int(value: Value, errors: Errors) -> int:
    """Cast any CESQL value to Integer."""
    if type(value) is int:
        return value
    if type(value) is bool:
        return 1 if value else 0
    return str_to_int(value, errors)  # type: ignore[arg-type]


def to_bool(value: Value, errors: Errors) -> bool:
    """Cast any CESQL value to Boolean."""
    if type(value) is bool:
        return value
    if type(value) is int:
        return value != 0
    return str_to_bool(value, errors)  # type: ignore[arg-type]


def to_str(value: Value, errors: Errors) -> str:
    """Cast any CESQL value to String (never fails)."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


CASTS: dict[type, Callable[[Value, Errors], Value]] = {int: to_int, bool: to_bool, str: to_str}
"""Cast function by target class."""


def can_cast(value: Value, target: type) -> bool:
    """Whether ``value`` casts to ``target`` without error (``IS_INT``/``IS_BOOL``)."""
    scratch: Errors = []
    CASTS[target](value, scratch)
    return not scratch


def normalize_attribute(value: object) -> Value | None:
    """Map a stored attribute value onto a CESQL value; ``None`` means absent.

    ``str``, ``bool`` and 32-bit ``int`` pass through; an out-of-range ``int``,
    ``bytes`` (base64, the CloudEvents Binary canonical form), datetimes
    (ISO 8601) and any other object are represented as String.
    """
    if value is None:
        return None
    if type(value) is str or type(value) is bool:
        return value
    if isinstance(value, int):
        number = int.__index__(value)
        return number if INT32_MIN <= number <= INT32_MAX else str(number)
    if isinstance(value, str):
        return str.__str__(value)  # exact str, even for str subclasses
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)
