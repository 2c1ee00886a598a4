"""``x [NOT] IN (y1, y2, ...)``.

Semantics (spec sections 3.4.5 and 3.7): each ``yN`` is cast to the type of
``x`` and compared as with ``=``; the result is true when one matches.  The
elements are checked left to right and the check stops at the first match, as
for the equivalent ``x = y1 OR x = y2 ...`` (so elements after a match are
not evaluated and raise no errors).

When every element is a literal (the usual ``type IN ('a', 'b', 'c')``), the
casts are done once at compile time for each possible type of ``x``, giving a
dict from cast value to its first position: membership is then one hash
lookup.  A literal that fails to cast (``1 IN ('one', 1)``) still produces its
``cast`` error at evaluation time, exactly when the left-to-right scan would
have reached it.
"""

from __future__ import annotations

from triggers.cesql.casts import CASTS
from triggers.cesql.errors import CesqlError
from triggers.cesql.values import Attributes, Closure, Errors, Value

__all__ = ["compile_in"]


class _Table:
    """The literal set cast to one target type."""

    __slots__ = ("first_error", "first_error_at", "positions")

    def __init__(self, literals: list[Value], target: type) -> None:
        self.positions: dict[Value, int] = {}
        self.first_error: CesqlError | None = None
        self.first_error_at = len(literals)
        cast = CASTS[target]
        for index, literal in enumerate(literals):
            errors: Errors = []
            value = cast(literal, errors)
            if errors:
                # A failed cast yields the type's zero value (False, 0): that value
                # is not an element of the set, or ``false IN ('yes')`` would match.
                if self.first_error is None:
                    self.first_error, self.first_error_at = errors[0], index
                continue
            self.positions.setdefault(value, index)

    def lookup(self, value: Value, errors: Errors) -> bool:
        index = self.positions.get(value)
        if self.first_error is not None and (index is None or self.first_error_at < index):
            errors.append(CesqlError(self.first_error.kind, self.first_error.message))
        return index is not None


def compile_in(
    operand: Closure,
    elements: list[Closure],
    literals: list[Value] | None,
    negated: bool,
) -> Closure:
    """Closure for an IN test; ``literals`` is given when every element is a literal."""
    if literals is not None:
        tables = {target: _Table(literals, target) for target in (str, int, bool)}
        text_positions = tables[str].positions  # str targets never fail to cast

        def in_literals(attributes: Attributes, errors: Errors) -> Value:
            value = operand(attributes, errors)
            if value.__class__ is str:
                return (value in text_positions) is not negated
            return tables[value.__class__].lookup(value, errors) is not negated

        return in_literals

    def in_expressions(attributes: Attributes, errors: Errors) -> Value:
        value = operand(attributes, errors)
        target = value.__class__
        cast = CASTS[target]
        for element in elements:
            candidate = element(attributes, errors)
            if candidate.__class__ is not target:
                candidate = cast(candidate, errors)
            if candidate == value:
                return not negated
        return negated

    return in_expressions
