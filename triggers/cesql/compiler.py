"""Compile a CESQL syntax tree into nested Python closures, once per trigger.

Each node becomes a closure ``(attributes, errors) -> value``; evaluating an
event is then one call of the root closure, with no tree walking, no dispatch
on node types and no allocation beyond one error list.  Static types known at
compile time pick specialised closures (``type = 'x'`` reads the attribute and
compares in a single frame; a cast is only attempted when the runtime class
differs), function overloads are resolved once, LIKE patterns are compiled once
and IN lists of literals become hash tables (see :mod:`triggers.cesql.sets`).

Missing attributes: spec section 3.2 says the subexpression referencing a
missing attribute evaluates to the zero value of *its* return type, with a
``missingAttribute`` error.  This engine applies that to every enclosing
operator and function up to the root (as sdk-java does for the operators it
checks), so the result is the zero value of the whole expression's type: an
attribute closure records the error and raises :class:`MissingAttribute`, and
:class:`~triggers.cesql.expression.CompiledExpression` turns it into that zero
value.  Short-circuiting still applies: ``FALSE AND missing`` never reads
``missing``.  ``1 / missing`` is therefore ``0`` with a ``missingAttribute``
error and no ``math`` error, exactly as the spec's example requires.
"""

from __future__ import annotations

from collections.abc import Callable

from triggers.cesql import payload
from triggers.cesql.arithmetic import ARITHMETIC, COMPARISONS, negate
from triggers.cesql.calls import compile_call
from triggers.cesql.casts import CASTS, normalize_attribute, to_bool, to_int, to_str
from triggers.cesql.errors import CesqlError, ErrorKind
from triggers.cesql.functions import FunctionRegistry
from triggers.cesql.like import compile_like
from triggers.cesql.logic import compile_logic
from triggers.cesql.nodes import (
    Call,
    Chain,
    DataPath,
    Exists,
    Identifier,
    In,
    Level,
    Like,
    Literal,
    Node,
    Unary,
)
from triggers.cesql.payload import PAYLOAD_KEY
from triggers.cesql.sets import compile_in
from triggers.cesql.values import Attributes, Closure, Errors, Value

__all__ = ["REQUIRED_ATTRIBUTES", "MissingAttribute", "compile_node"]

REQUIRED_ATTRIBUTES = frozenset({"specversion", "id", "source", "type"})
"""``EXISTS`` is always true for these (spec section 3.4.4)."""

StaticType = type | None  # bool, int or str; None when it depends on the event


class MissingAttribute(Exception):
    """Raised by an attribute closure after recording a ``missingAttribute`` error."""


def compile_node(node: Node, registry: FunctionRegistry) -> tuple[Closure, StaticType]:
    """Compile ``node``; returns the closure and the static type of its value."""
    if isinstance(node, Literal):
        return _constant(node.value), type(node.value)
    if isinstance(node, Identifier):
        return _attribute(node.name), None
    if isinstance(node, DataPath):
        return _data_path(node.path, node.segments), None
    if isinstance(node, Exists):
        if node.name.startswith(PAYLOAD_KEY):
            return _data_exists(tuple(node.name.split(".")[1:])), bool
        return _exists(node.name), bool
    if isinstance(node, Unary):
        return _unary(node, registry)
    if isinstance(node, Chain):
        return _chain(node, registry)
    if isinstance(node, Like):
        operand, _ = compile_node(node.operand, registry)
        return _like(operand, node.pattern, node.negated), bool
    if isinstance(node, In):
        operand, _ = compile_node(node.operand, registry)
        elements = [compile_node(element, registry)[0] for element in node.elements]
        literals = [e.value for e in node.elements if isinstance(e, Literal)]
        constant = literals if len(literals) == len(node.elements) else None
        return compile_in(operand, elements, constant, node.negated), bool
    if isinstance(node, Call):
        args = [compile_node(arg, registry) for arg in node.args]
        return compile_call(node.name, args, registry)
    raise TypeError(f"not a CESQL node: {node!r}")  # pragma: no cover - parser invariant


def read_attribute(value: object, name: str, errors: Errors) -> Value:
    """Slow path of attribute access: normalise, or record the miss and raise."""
    normalized = normalize_attribute(value)
    if normalized is None:
        errors.append(CesqlError(ErrorKind.MISSING_ATTRIBUTE, f"missing attribute {name!r}"))
        raise MissingAttribute(name)
    return normalized


def _data_path(path: str, segments: tuple[str, ...]) -> Closure:
    def data_path(attributes: Attributes, errors: Errors) -> Value:
        value = payload.lookup(attributes.get(PAYLOAD_KEY), segments, path, errors)
        if value is None:
            raise MissingAttribute(path)
        return value

    return data_path


def _data_exists(segments: tuple[str, ...]) -> Closure:
    def data_exists(attributes: Attributes, errors: Errors) -> Value:
        return payload.exists(attributes.get(PAYLOAD_KEY), segments)

    return data_exists


def reads_data(node: Node) -> bool:
    """Whether ``node`` (a parsed expression) uses a ``data.`` path anywhere."""
    if isinstance(node, DataPath):
        return True
    if isinstance(node, Exists):
        return node.name.startswith(PAYLOAD_KEY)
    children: tuple[Node, ...] = ()
    if isinstance(node, Unary | Like):
        children = (node.operand,)
    elif isinstance(node, Chain):
        children = tuple(node.operands)
    elif isinstance(node, In):
        children = (node.operand, *node.elements)
    elif isinstance(node, Call):
        children = tuple(node.args)
    return any(reads_data(child) for child in children)


def _constant(value: Value) -> Closure:
    def constant(attributes: Attributes, errors: Errors) -> Value:
        return value

    return constant


def _attribute(name: str) -> Closure:
    def attribute(attributes: Attributes, errors: Errors) -> Value:
        value = attributes.get(name)
        if value.__class__ is str:
            return value
        return read_attribute(value, name, errors)

    return attribute


def _exists(name: str) -> Closure:
    if name in REQUIRED_ATTRIBUTES:
        return _constant(True)

    def exists(attributes: Attributes, errors: Errors) -> Value:
        return attributes.get(name) is not None

    return exists


def _unary(node: Unary, registry: FunctionRegistry) -> tuple[Closure, StaticType]:
    operand, operand_type = compile_node(node.operand, registry)
    if node.op == "NOT":
        if operand_type is bool:

            def not_bool(attributes: Attributes, errors: Errors) -> Value:
                return not operand(attributes, errors)

            return not_bool, bool

        def not_any(attributes: Attributes, errors: Errors) -> Value:
            return not to_bool(operand(attributes, errors), errors)

        return not_any, bool

    def minus(attributes: Attributes, errors: Errors) -> Value:
        value = operand(attributes, errors)
        if type(value) is not int:
            value = to_int(value, errors)
        return negate(value, errors)

    return minus, int


def _like(operand: Closure, pattern: str, negated: bool) -> Closure:
    matcher = compile_like(pattern)

    def like(attributes: Attributes, errors: Errors) -> Value:
        value = operand(attributes, errors)
        if value.__class__ is not str:
            value = to_str(value, errors)
        return matcher(value) is not negated

    return like


def _chain(node: Chain, registry: FunctionRegistry) -> tuple[Closure, StaticType]:
    compiled = [compile_node(operand, registry) for operand in node.operands]
    if node.level == Level.LOGIC:
        closures = [closure for closure, _ in compiled]
        return compile_logic(
            closures, list(node.ops), [_string_equality(o) for o in node.operands]
        ), bool
    if node.level == Level.COMPARISON:
        if len(compiled) == 2:
            return _comparison(node, compiled), bool
        return _fold(compiled, node.ops, cast_first=False), bool
    if len(compiled) == 2:
        return _arithmetic(node.ops[0], compiled[0][0], compiled[1][0]), int
    return _fold(compiled, node.ops, cast_first=True), int


def _string_equality(node: Node) -> tuple[str, str] | None:
    """``(name, literal)`` when ``node`` is ``name = 'literal'``, else None."""
    if isinstance(node, Chain) and node.ops == ("=",):
        left, right = node.operands
        literal = right.value if isinstance(right, Literal) else None
        if isinstance(left, Identifier) and type(literal) is str:
            return left.name, literal
    return None


def _fold(
    compiled: list[tuple[Closure, StaticType]], ops: tuple[str, ...], cast_first: bool
) -> Closure:
    """Left fold of a run of comparison or arithmetic operators, evaluated in a loop."""
    first = compiled[0][0]
    rest = [
        (COMPARISONS.get(op) or _arithmetic_step(ARITHMETIC[op]), closure)
        for op, (closure, _) in zip(ops, compiled[1:], strict=True)
    ]

    def fold(attributes: Attributes, errors: Errors) -> Value:
        value = first(attributes, errors)
        if cast_first and type(value) is not int:
            value = to_int(value, errors)
        for apply, closure in rest:
            value = apply(value, closure(attributes, errors), errors)
        return value

    return fold


def _arithmetic_step(
    op: Callable[[int, int, Errors], int],
) -> Callable[[Value, Value, Errors], Value]:
    def step(x: Value, y: Value, errors: Errors) -> Value:
        if type(x) is not int:
            x = to_int(x, errors)
        if type(y) is not int:
            y = to_int(y, errors)
        return op(x, y, errors)

    return step


def _arithmetic(op: str, left: Closure, right: Closure) -> Closure:
    apply = ARITHMETIC[op]

    def arithmetic(attributes: Attributes, errors: Errors) -> Value:
        x = left(attributes, errors)
        y = right(attributes, errors)
        if type(x) is not int:
            x = to_int(x, errors)
        if type(y) is not int:
            y = to_int(y, errors)
        return apply(x, y, errors)

    return arithmetic


def _comparison(node: Chain, compiled: list[tuple[Closure, StaticType]]) -> Closure:
    op = node.ops[0]
    (left, left_type), (right, _) = compiled
    left_node, right_node = node.operands
    if op in ("=", "!=", "<>") and isinstance(right_node, Literal):
        literal = right_node.value
        if isinstance(left_node, Identifier):
            return _attribute_equals(left_node.name, literal, negated=op != "=")
        if left_type is type(literal):
            if op == "=":
                return lambda attributes, errors: left(attributes, errors) == literal
            return lambda attributes, errors: left(attributes, errors) != literal
    compare = COMPARISONS[op]

    def comparison(attributes: Attributes, errors: Errors) -> Value:
        return compare(left(attributes, errors), right(attributes, errors), errors)

    return comparison


def _attribute_equals(name: str, literal: Value, negated: bool) -> Closure:
    """``attribute = literal``: the most common filter, in a single frame."""
    cls = literal.__class__
    cast = CASTS[cls]

    def slow(value: object, errors: Errors) -> bool:
        normalized = read_attribute(value, name, errors)
        if normalized.__class__ is not cls:
            normalized = cast(normalized, errors)
        return normalized == literal

    # Integers skip the fast path: an out-of-range int attribute is a String.
    fast = cls if cls is not int else None

    if negated:

        def not_equals(attributes: Attributes, errors: Errors) -> Value:
            value = attributes.get(name)
            if value.__class__ is fast:
                return value != literal
            return not slow(value, errors)

        return not_equals

    def equals(attributes: Attributes, errors: Errors) -> Value:
        value = attributes.get(name)
        if value.__class__ is fast:
            return value == literal
        return slow(value, errors)

    return equals
