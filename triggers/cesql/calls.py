"""Function invocations, resolved against the registry at compile time.

* No overload for the name and argument count: the call evaluates to ``false``
  with a ``missingFunction`` error (spec section 3.5), arguments unevaluated.
  It is not a parse error: the TCK expects ``CONCAT_WS()`` to *evaluate* to
  ``false`` plus the error.
* Arguments are evaluated left to right and cast to the parameter types
  (``object`` parameters are passed as they are); a failed cast reports a
  ``cast`` error and passes the zero value, and the function still runs.
* Memory bound: if the string arguments of one call add up to more than
  ``MAX_STRING_LENGTH`` characters, or the function returns a longer string,
  the call yields the zero value of its return type and a
  ``functionEvaluation`` error (remaining arguments are not evaluated).
"""

from __future__ import annotations

from triggers.cesql.casts import CASTS
from triggers.cesql.errors import CesqlError, ErrorKind
from triggers.cesql.functions import Function, FunctionRegistry
from triggers.cesql.limits import MAX_STRING_LENGTH
from triggers.cesql.values import Attributes, Closure, Errors, Value, zero_value

__all__ = ["compile_call"]


def compile_call(
    name: str,
    args: list[tuple[Closure, type | None]],
    registry: FunctionRegistry,
) -> tuple[Closure, type]:
    """Closure and static return type for ``name(args...)``."""
    function = registry.resolve(name, len(args))
    if function is None:
        return _missing(name, len(args), registry), bool
    return _invoke(function, args), function.returns


def _missing(name: str, arity: int, registry: FunctionRegistry) -> Closure:
    known = ", ".join(function.signature() for function in registry.overloads(name))
    have = f"; defined: {known}" if known else ""
    message = f"no function {name} taking {arity} argument{'s' if arity != 1 else ''}{have}"

    def missing(attributes: Attributes, errors: Errors) -> Value:
        errors.append(CesqlError(ErrorKind.MISSING_FUNCTION, message))
        return False

    return missing


def _too_long(function: Function, what: str, errors: Errors) -> Value:
    errors.append(
        CesqlError(
            ErrorKind.FUNCTION_EVALUATION,
            f"{function.name}: {what} longer than {MAX_STRING_LENGTH} characters",
        )
    )
    return zero_value(function.returns)


def _invoke(function: Function, args: list[tuple[Closure, type | None]]) -> Closure:
    impl = function.impl
    plan = []
    for index, (closure, static_type) in enumerate(args):
        target = function.param_type(index)
        cast = None if target is object or target is static_type else CASTS[target]
        plan.append((closure, target, cast))
    steps = tuple(plan)

    def invoke(attributes: Attributes, errors: Errors) -> Value:
        values: list[Value] = []
        total = 0
        for closure, target, cast in steps:
            value = closure(attributes, errors)
            if cast is not None and value.__class__ is not target:
                value = cast(value, errors)
            if value.__class__ is str:
                total += len(value)
                if total > MAX_STRING_LENGTH:
                    return _too_long(function, "arguments", errors)
            values.append(value)
        result = impl(errors, *values)
        if result.__class__ is str and len(result) > MAX_STRING_LENGTH:
            return _too_long(function, "result", errors)
        return result

    return invoke
