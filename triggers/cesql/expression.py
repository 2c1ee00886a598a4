"""``compile_expression`` and the :class:`CompiledExpression` triggers hold on to.

A compiled expression is immutable and thread-safe: the closures keep no
state, and each evaluation gets its own error list.  ``evaluate`` never
raises.  Besides the spec's errors it guards against the unexpected (a
``Mapping`` whose ``get`` raises, a bug): such failures become a ``generic``
error with the zero value, so one bad event can never take a dispatcher down.

``matches`` is the trigger's question.  Spec section 1.2 and Knative's
``cesql_filter.go`` agree: the event passes only if the value is the Boolean
``true`` *and* no error was reported.  A non-Boolean result (``'abc'``, or an
``int`` extension on its own) does not pass and is not an error; Knative's
filter would panic on its ``res.(bool)`` assertion there.  ``result_type``
lets the trigger reject at load time expressions that can never be Boolean.
"""

from __future__ import annotations

from triggers.cesql.compiler import MissingAttribute, compile_node, reads_data
from triggers.cesql.errors import CesqlError, CesqlParseError, ErrorKind
from triggers.cesql.functions import FunctionRegistry
from triggers.cesql.parser import parse
from triggers.cesql.values import Attributes, Closure, Errors, Result, Value, zero_value

__all__ = ["CompiledExpression", "compile_expression"]

_DEFAULT_REGISTRY: FunctionRegistry | None = None
_TRUE = Result(True, None)
_FALSE = Result(False, None)


def _default_registry() -> FunctionRegistry:
    global _DEFAULT_REGISTRY  # noqa: PLW0603 - built lazily, never mutated afterwards
    if _DEFAULT_REGISTRY is None:
        _DEFAULT_REGISTRY = FunctionRegistry()
    return _DEFAULT_REGISTRY


def compile_expression(text: str, functions: FunctionRegistry | None = None) -> CompiledExpression:
    """Parse and compile a CESQL expression; raises :class:`CesqlParseError`.

    ``functions`` defaults to the built-ins.  Function calls are resolved now, so
    later registrations do not affect the returned expression.
    """
    if not isinstance(text, str):
        raise TypeError(f"a CESQL expression is a str, not {type(text).__name__}")
    registry = functions if functions is not None else _default_registry()
    try:
        tree = parse(text)
        closure, static_type = compile_node(tree, registry)
        uses_data = reads_data(tree)
    except RecursionError:
        # Unreachable with the default recursion limit (see limits.MAX_DEPTH),
        # but a caller already deep in its own stack must still get a clean error.
        raise CesqlParseError("expression is nested too deeply for the stack", 0, text) from None
    compiled = CompiledExpression(text, closure, static_type)
    compiled.reads_data = uses_data
    return compiled


class CompiledExpression:
    """A CESQL expression compiled for repeated evaluation."""

    __slots__ = ("_closure", "_zero", "expression", "reads_data", "result_type")

    expression: str
    """The source text."""

    result_type: type | None
    """``bool``, ``int`` or ``str``; ``None`` when it depends on the event (a bare attribute)."""

    reads_data: bool
    """Whether it uses a ``data.`` path (our extension): then it must be evaluated on
    :func:`triggers.cesql.payload.data_view` of the event, not its bare attributes."""

    def __init__(self, expression: str, closure: Closure, result_type: type | None) -> None:
        self.expression = expression
        self.result_type = result_type
        self._closure = closure
        self._zero: Value = zero_value(result_type)
        self.reads_data = False

    def __repr__(self) -> str:
        return f"CompiledExpression({self.expression!r})"

    def evaluate(self, attributes: Attributes) -> Result:
        """Value and first error for one event's attributes.  Never raises."""
        errors: Errors = []
        try:
            value = self._closure(attributes, errors)
        except MissingAttribute:
            value = self._zero
        except Exception as exc:  # defensive: hostile mapping or engine bug
            errors.append(_unexpected(exc))
            value = self._zero
        if errors:
            return Result(value, errors[0])
        if value is True:  # results are immutable: share the two commonest ones
            return _TRUE
        if value is False:
            return _FALSE
        return Result(value, None)

    def matches(self, attributes: Attributes) -> tuple[bool, ErrorKind | None]:
        """Filter decision: ``(True, None)`` only for a Boolean ``true`` without error.

        On error the second item is the kind of the first error, for counting.
        """
        errors: Errors = []
        try:
            value = self._closure(attributes, errors)
        except MissingAttribute:
            return False, errors[0].kind
        except Exception as exc:  # defensive, as in evaluate()
            errors.append(_unexpected(exc))
            return False, errors[0].kind
        if errors:
            return False, errors[0].kind
        return value is True, None


def _unexpected(exc: Exception) -> CesqlError:
    try:
        detail = str(exc)[:200]
    except Exception:  # an exception whose __str__ fails must not escape either
        detail = "<unprintable>"
    return CesqlError(ErrorKind.GENERIC, f"evaluation failed: {type(exc).__name__}: {detail}")
