"""CloudEvents SQL (CESQL v1.0) for trigger filters: parser, compiler, evaluator.

Usage::

    from triggers.cesql import compile_expression, CesqlParseError

    expr = compile_expression("type LIKE 'com.example.%' AND EXISTS subject")
    ok, error_kind = expr.matches(event_attributes)    # trigger decision
    result = expr.evaluate(event_attributes)           # Result(value, error)

Expressions are parsed by a hand-written recursive-descent parser (exact error
positions, limits enforced while parsing, no dependency) and compiled once into
nested closures, so evaluating an event does not walk a tree.  Evaluation is
total, as the spec requires: it always yields a value plus the first error, and
never raises.  See ``docs/cesql.md`` for the supported language, error kinds,
limits and the decisions taken where the spec, its TCK and the SDKs disagree.

Module map: ``lexer`` -> ``parser`` (-> ``nodes``) -> ``compiler`` (with
``logic``, ``arithmetic``, ``sets``, ``calls``, ``like``) -> ``expression``;
``casts`` and ``values`` hold the type system, ``functions``/``builtins`` the
function table, ``errors`` the error types, ``limits`` the resource bounds and
``explain`` the JSON report.
"""

from triggers.cesql.errors import CesqlError, CesqlParseError, ErrorKind
from triggers.cesql.explain import explain
from triggers.cesql.expression import CompiledExpression, compile_expression
from triggers.cesql.functions import FunctionRegistry
from triggers.cesql.values import Result, Value

__all__ = [
    "CesqlError",
    "CesqlParseError",
    "CompiledExpression",
    "ErrorKind",
    "FunctionRegistry",
    "Result",
    "Value",
    "compile_expression",
    "explain",
]
