"""32-bit integer arithmetic and comparison operators with CESQL's total semantics.

* ``/`` truncates toward zero and ``%`` takes the sign of the dividend (spec
  section 3.4.2); Python's ``//`` and ``%`` floor instead, so both are computed
  on absolute values.
* Division or modulo by zero: ``0`` and a ``math`` error.
* Overflow of ``+ - * /`` and unary ``-``: the spec only defines it for ``ABS``
  (``ABS(-2147483648)`` is ``2147483647`` plus a ``math`` error), so every
  operator follows that rule: the result is clamped to the 32-bit range and a
  ``math`` error is reported.  (sdk-go and sdk-java silently wrap around; for a
  filter an error is the safe outcome: the event is not delivered.)
* ``=``, ``!=``, ``<>`` are *ambiguous* operators (spec section 3.7): the left
  operand is cast to the type of the right one.  ``< <= > >=`` are defined on
  Integers only, so both operands are cast to Integer.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from triggers.cesql.casts import CASTS, to_int
from triggers.cesql.errors import CesqlError, ErrorKind
from triggers.cesql.values import INT32_MAX, INT32_MIN, Errors, Value

__all__ = ["ARITHMETIC", "COMPARISONS", "equal", "negate"]


def _overflow(result: int, description: str, errors: Errors) -> int:
    clamped = INT32_MAX if result > INT32_MAX else INT32_MIN
    errors.append(
        CesqlError(ErrorKind.MATH, f"integer overflow in {description}; returning {clamped}")
    )
    return clamped


def add(x: int, y: int, errors: Errors) -> int:
    result = x + y
    if INT32_MIN <= result <= INT32_MAX:
        return result
    return _overflow(result, f"{x} + {y}", errors)


def subtract(x: int, y: int, errors: Errors) -> int:
    result = x - y
    if INT32_MIN <= result <= INT32_MAX:
        return result
    return _overflow(result, f"{x} - {y}", errors)


def multiply(x: int, y: int, errors: Errors) -> int:
    result = x * y
    if INT32_MIN <= result <= INT32_MAX:
        return result
    return _overflow(result, f"{x} * {y}", errors)


def divide(x: int, y: int, errors: Errors) -> int:
    if y == 0:
        errors.append(CesqlError(ErrorKind.MATH, f"division by zero in {x} / 0"))
        return 0
    quotient = abs(x) // abs(y)
    result = -quotient if (x < 0) != (y < 0) else quotient
    if result > INT32_MAX:  # only INT32_MIN / -1
        return _overflow(result, f"{x} / {y}", errors)
    return result


def modulo(x: int, y: int, errors: Errors) -> int:
    if y == 0:
        errors.append(CesqlError(ErrorKind.MATH, f"division by zero in {x} % 0"))
        return 0
    remainder = abs(x) % abs(y)
    return -remainder if x < 0 else remainder


def negate(x: int, errors: Errors) -> int:
    if x == INT32_MIN:
        return _overflow(-x, f"-({x})", errors)
    return -x


ARITHMETIC: dict[str, Callable[[int, int, Errors], int]] = {
    "+": add,
    "-": subtract,
    "*": multiply,
    "/": divide,
    "%": modulo,
}


def equal(x: Value, y: Value, errors: Errors) -> bool:
    """``x = y``: cast ``x`` to the type of ``y``, then compare."""
    if x.__class__ is not y.__class__:
        x = CASTS[y.__class__](x, errors)
    return x == y


def _not_equal(x: Value, y: Value, errors: Errors) -> bool:
    return not equal(x, y, errors)


def _ordering(compare: Callable[[int, int], bool]) -> Callable[[Value, Value, Errors], bool]:
    def apply(x: Value, y: Value, errors: Errors) -> bool:
        if type(x) is not int:
            x = to_int(x, errors)
        if type(y) is not int:
            y = to_int(y, errors)
        return compare(x, y)

    return apply


COMPARISONS: dict[str, Callable[[Value, Value, Errors], bool]] = {
    "=": equal,
    "!=": _not_equal,
    "<>": _not_equal,
    "<": _ordering(operator.lt),
    "<=": _ordering(operator.le),
    ">": _ordering(operator.gt),
    ">=": _ordering(operator.ge),
}
"""Binary comparison by operator, applied to already evaluated operands."""
