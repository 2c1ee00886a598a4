"""AND / OR / XOR runs, compiled to one short-circuiting loop.

The operands of a run such as ``a AND b OR c XOR d`` are folded left to right
(``((a AND b) OR c) XOR d``).  Short-circuit rule (spec section 3.4.2): the
right operand of AND is not evaluated when the accumulated left value is
``false``, nor the right operand of OR when it is ``true``; skipped operands
raise no errors.  Each operand is cast to Boolean (a failed cast gives
``false`` and a ``cast`` error).  Pure AND and pure OR runs, the shape of
nearly every filter, get a dedicated loop that exits at the first deciding
operand.
"""

from __future__ import annotations

from triggers.cesql.casts import to_bool
from triggers.cesql.values import Attributes, Closure, Errors, Value

__all__ = ["compile_logic"]


def compile_logic(
    operands: list[Closure],
    ops: list[str],
    equalities: list[tuple[str, str] | None] | None = None,
) -> Closure:
    """Closure for ``operands[0] ops[0] operands[1] ...`` (AND/OR/XOR).

    ``equalities[i]`` is ``(name, literal)`` when operand ``i`` is ``name = 'literal'``.
    """
    if all(op == "AND" for op in ops):
        tests = [
            (pair[0], pair[1], operand)
            for pair, operand in zip(equalities or [], operands, strict=False)
            if pair is not None
        ]
        if len(tests) == len(operands):
            return _all_equal(tuple(tests))
        return _all(tuple(operands))
    if all(op == "OR" for op in ops):
        return _any(tuple(operands))
    return _mixed(operands[0], list(zip(ops, operands[1:], strict=True)))


def _all(operands: tuple[Closure, ...]) -> Closure:
    def all_of(attributes: Attributes, errors: Errors) -> Value:
        for operand in operands:
            value = operand(attributes, errors)
            if value is True:
                continue
            if value is False or not to_bool(value, errors):
                return False
        return True

    return all_of


def _all_equal(tests: tuple[tuple[str, str, Closure], ...]) -> Closure:
    def all_equal(attributes: Attributes, errors: Errors) -> Value:
        for name, literal, operand in tests:
            value = attributes.get(name)
            if value.__class__ is str:
                if value != literal:
                    return False
            elif not operand(attributes, errors):  # cast or missing: the full comparison
                return False
        return True

    return all_equal


def _any(operands: tuple[Closure, ...]) -> Closure:
    def any_of(attributes: Attributes, errors: Errors) -> Value:
        for operand in operands:
            value = operand(attributes, errors)
            if value is False:
                continue
            if value is True or to_bool(value, errors):
                return True
        return False

    return any_of


def _mixed(first: Closure, rest: list[tuple[str, Closure]]) -> Closure:
    def mixed(attributes: Attributes, errors: Errors) -> Value:
        value = first(attributes, errors)
        accumulated = value if type(value) is bool else to_bool(value, errors)
        for op, operand in rest:
            if op == "AND":
                if not accumulated:
                    continue
            elif op == "OR" and accumulated:
                continue
            value = operand(attributes, errors)
            current = value if type(value) is bool else to_bool(value, errors)
            accumulated = accumulated is not current if op == "XOR" else current
        return accumulated

    return mixed
