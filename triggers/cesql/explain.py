"""``explain``: evaluate an expression against one event and report it as JSON.

Meant for tooling (a CLI ``eventing cesql explain``, an admin endpoint, the
trigger status): one call parses, evaluates and returns a JSON-ready dict, so
parse errors and evaluation errors come back in the same shape::

    {"value": true, "error": null}
    {"value": 0, "error": {"kind": "missingAttribute", "message": "missing attribute 'x'"}}
    {"value": null, "error": {"kind": "parse", "message": "...", "position": 7}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from triggers.cesql.errors import CesqlParseError
from triggers.cesql.expression import compile_expression
from triggers.cesql.functions import FunctionRegistry

__all__ = ["explain"]


def explain(
    expression: str,
    attributes: Mapping[str, object],
    functions: FunctionRegistry | None = None,
) -> dict[str, Any]:
    """Evaluate ``expression`` on ``attributes``; never raises for a str expression."""
    try:
        compiled = compile_expression(expression, functions)
    except CesqlParseError as exc:
        return {"value": None, "error": exc.to_dict()}
    result = compiled.evaluate(attributes)
    return {
        "value": result.value,
        "error": None if result.error is None else result.error.to_dict(),
    }
