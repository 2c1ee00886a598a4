"""CESQL built-in functions (spec v1.0 section 3.5 and the casting functions of 3.7).

Each implementation receives the error list first and arguments already cast
to its parameter types, and always returns a value of its return type; on a
domain error it appends the error the spec names and returns the value the spec
names (``LEFT('abc', -2)`` is ``'abc'`` plus a ``functionEvaluation`` error).

Strings are sequences of Unicode code points: ``LENGTH``, ``LEFT``, ``RIGHT``
and ``SUBSTRING`` count code points (sdk-java counts UTF-16 units, sdk-go
bytes).  ``TRIM`` removes exactly the Unicode ``White_Space`` characters, not
Python's wider ``str.isspace`` set (which includes the U+001C..U+001F control
separators that the spec says must stay).

``IS_INT`` and ``IS_BOOL`` are not in the v1.0 tables; sdk-go and sdk-java both
ship them, so expressions written for Knative can use them here too.
"""

from __future__ import annotations

from triggers.cesql.casts import can_cast, to_bool, to_int, to_str
from triggers.cesql.errors import CesqlError, ErrorKind
from triggers.cesql.functions import Function, Implementation
from triggers.cesql.values import INT32_MAX, INT32_MIN, Errors, Value

__all__ = ["BUILTINS", "UNICODE_WHITESPACE"]

UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
"""Characters with the Unicode White_Space property (Unicode 15)."""


def _function_error(errors: Errors, message: str) -> None:
    errors.append(CesqlError(ErrorKind.FUNCTION_EVALUATION, message))


def _length(errors: Errors, text: str) -> int:
    return len(text)


def _concat(errors: Errors, *parts: str) -> str:
    return "".join(parts)


def _concat_ws(errors: Errors, separator: str, *parts: str) -> str:
    return separator.join(parts)


def _lower(errors: Errors, text: str) -> str:
    return text.lower()


def _upper(errors: Errors, text: str) -> str:
    return text.upper()


def _trim(errors: Errors, text: str) -> str:
    return text.strip(UNICODE_WHITESPACE)


def _left(errors: Errors, text: str, count: int) -> str:
    if count < 0:
        _function_error(errors, f"LEFT: length must not be negative, got {count}")
        return text
    return text[:count]


def _right(errors: Errors, text: str, count: int) -> str:
    if count < 0:
        _function_error(errors, f"RIGHT: length must not be negative, got {count}")
        return text
    if count == 0:
        return ""
    return text[-count:]


def _substring_start(errors: Errors, text: str, pos: int) -> int | None:
    """0-based start for 1-based (or from-the-end negative) ``pos``; None if out of range."""
    length = len(text)
    if pos > length or pos < -length:
        _function_error(
            errors, f"SUBSTRING: position {pos} is outside the string (length {length})"
        )
        return None
    return pos - 1 if pos > 0 else length + pos


def _substring(errors: Errors, text: str, pos: int) -> str:
    start = _substring_start(errors, text, pos)
    if start is None or pos == 0:
        return ""
    return text[start:]


def _substring_len(errors: Errors, text: str, pos: int, count: int) -> str:
    start = _substring_start(errors, text, pos)
    if start is None:
        return ""
    if count < 0:
        _function_error(errors, f"SUBSTRING: length must not be negative, got {count}")
        return ""
    if pos == 0:
        return ""
    return text[start : start + count]


def _abs(errors: Errors, number: int) -> int:
    if number == INT32_MIN:
        errors.append(
            CesqlError(ErrorKind.MATH, f"ABS({INT32_MIN}) overflows; returning {INT32_MAX}")
        )
        return INT32_MAX
    return abs(number)


def _int(errors: Errors, value: Value) -> int:
    return to_int(value, errors)


def _bool(errors: Errors, value: Value) -> bool:
    return to_bool(value, errors)


def _string(errors: Errors, value: Value) -> str:
    return to_str(value, errors)


def _is_int(errors: Errors, value: Value) -> bool:
    return can_cast(value, int)


def _is_bool(errors: Errors, value: Value) -> bool:
    return can_cast(value, bool)


def _builtin(
    name: str,
    params: tuple[type, ...],
    returns: type,
    impl: Implementation,
    variadic: type | None = None,
) -> Function:
    return Function(name, params, variadic, returns, impl)


BUILTINS: tuple[Function, ...] = (
    _builtin("LENGTH", (str,), int, _length),
    _builtin("CONCAT", (), str, _concat, variadic=str),
    _builtin("CONCAT_WS", (str,), str, _concat_ws, variadic=str),
    _builtin("LOWER", (str,), str, _lower),
    _builtin("UPPER", (str,), str, _upper),
    _builtin("TRIM", (str,), str, _trim),
    _builtin("LEFT", (str, int), str, _left),
    _builtin("RIGHT", (str, int), str, _right),
    _builtin("SUBSTRING", (str, int), str, _substring),
    _builtin("SUBSTRING", (str, int, int), str, _substring_len),
    _builtin("ABS", (int,), int, _abs),
    _builtin("INT", (object,), int, _int),
    _builtin("BOOL", (object,), bool, _bool),
    _builtin("STRING", (object,), str, _string),
    _builtin("IS_INT", (object,), bool, _is_int),
    _builtin("IS_BOOL", (object,), bool, _is_bool),
)
"""Every built-in overload, registered in each new :class:`FunctionRegistry`."""
