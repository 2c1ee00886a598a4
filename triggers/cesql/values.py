"""CESQL value model: the three primitive types, their zero values, the 32-bit range.

CESQL (spec v1.0 section 3.1) has exactly three value types, mapped here to the
exact Python classes ``bool``, ``int`` (always within the signed 32-bit range)
and ``str``.  The engine only ever produces objects whose class is exactly one
of these, which lets hot paths dispatch on ``value.__class__ is str`` instead of
``isinstance`` (``bool`` is a subclass of ``int`` in Python, a classic trap).

``Result`` is the pair every evaluation returns: the value and the first error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from triggers.cesql.errors import CesqlError

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "Attributes",
    "Closure",
    "Errors",
    "Result",
    "Value",
    "ValueType",
    "type_name",
    "zero_value",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

Value = bool | int | str
"""A CESQL value: Boolean, Integer (signed 32-bit) or String."""

ValueType = type[bool] | type[int] | type[str]

Attributes = Mapping[str, object]
"""Context attributes and extensions by lower-case name, as the broker holds them."""

Errors = list[CesqlError]
"""Errors collected during one evaluation, in the order they happened."""

Closure = Callable[[Attributes, Errors], Value]
"""A compiled (sub)expression: evaluates against attributes, appends errors."""


class Result(NamedTuple):
    """What evaluating a CESQL expression gives: a value and the first error (if any)."""

    value: Value
    error: CesqlError | None


_ZERO: dict[object, Value] = {bool: False, int: 0, str: ""}
_NAMES: dict[object, str] = {bool: "Boolean", int: "Integer", str: "String", object: "Any"}


def zero_value(static_type: object) -> Value:
    """The spec's zero value for a type; Boolean when the type is not known statically."""
    return _ZERO.get(static_type, False)


def type_name(value_type: object) -> str:
    """The CESQL name of a Python value class (``str`` -> ``String``)."""
    return _NAMES.get(value_type, getattr(value_type, "__name__", str(value_type)))
