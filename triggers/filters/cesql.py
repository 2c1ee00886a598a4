"""The ``cesql`` dialect: a CloudEvents SQL expression compiled once per trigger.

Knative's rule (``cesql_filter.go``): a blank expression is no filter; an expression
that fails to parse is rejected when the trigger is loaded; at dispatch an
evaluation error means *no match*, even if a value was produced. Each error is
counted by kind as the drop reason ``cesql:<kind>``.
"""

from __future__ import annotations

from collections.abc import Mapping

from eventing.events import AttributeValue
from triggers.cesql import FunctionRegistry, compile_expression
from triggers.filters.verdict import FILTERED, NO_FILTER, Node, Verdict


def cesql(expression: str, functions: FunctionRegistry | None = None) -> Node:
    if not expression.strip():
        return lambda attributes: NO_FILTER
    compiled = compile_expression(expression, functions)
    matches = compiled.matches

    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        ok, kind = matches(attributes)
        if kind is not None:
            return f"cesql:{kind.value if hasattr(kind, 'value') else kind}"
        return None if ok else FILTERED

    return node
