"""Why a trigger's filter passes or drops an event, clause by clause.

The answer to "why didn't my trigger fire?". Every verdict here comes from the same
code the broker routes with: the trigger's overall verdict from
:func:`triggers.materialize.materialize`, each clause's from
:func:`triggers.materialize.clause_node`, each attribute check from the dialect's own
node built for that one attribute, and a CESQL clause's value and error from
:func:`triggers.cesql.explain`. So an explanation can never disagree with routing.

The result is JSON-ready::

    {"matched": false, "reason": "filtered", "mode": "filters",
     "clauses": [{"path": "filters[0]", "dialect": "exact", "verdict": "fail",
                  "reason": "filtered",
                  "checks": [{"attribute": "type", "expected": "a", "actual": "b",
                              "ok": false}]}]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eventing.events import AttributeValue, canonical
from eventing.resources.trigger import SubscriptionsAPIFilter, TriggerSpec
from triggers.filters import attributes as attr
from triggers.filters.verdict import NO_FILTER, Node, Verdict
from triggers.materialize import DataTriggerFilter, TriggerFilter, clause_node, materialize

Attributes = Mapping[str, AttributeValue]
_CHECKS: dict[str, Callable[[Mapping[str, str]], Node]] = {
    "exact": attr.exact,
    "prefix": attr.prefix,
    "suffix": attr.suffix,
    "attributes": attr.legacy,
}


def explain_trigger(
    spec: TriggerSpec, attributes: Attributes, data: bytes | None = None
) -> dict[str, Any]:
    """The trigger's verdict on ``attributes`` and the verdict of each of its clauses.
    A trigger with ``data.`` paths (our extension) is judged on ``data`` as the broker
    would; without it, its paths say the event has no data."""
    built = _built(spec, lambda: materialize(spec))
    if isinstance(built, DataTriggerFilter):
        from triggers.cesql.payload import data_view

        attributes = data_view(attributes, data, {})  # type: ignore[assignment]
        reason = TriggerFilter.__call__(built, attributes)
    else:
        reason = built(attributes)
    clauses: list[dict[str, Any]]
    if spec.filters:
        mode = "filters"
        clauses = [_clause(f, f"filters[{i}]", attributes) for i, f in enumerate(spec.filters)]
    elif spec.filter is not None and spec.filter.attributes:
        mode = "attributes"
        legacy = spec.filter.attributes
        verdict = attr.legacy(legacy)(attributes)
        clauses = [
            {
                "path": "filter.attributes",
                "dialect": "attributes",
                **_verdict(verdict),
                "checks": _checks("attributes", legacy, attributes),
            }
        ]
    else:
        mode = "none"
        clauses = []
    return {"matched": reason is None, "reason": reason, "mode": mode, "clauses": clauses}


def why_not(explanation: Mapping[str, Any]) -> str:
    """One line saying which clause failed and how (empty when it matched)."""
    if explanation.get("matched"):
        return ""
    for clause in explanation.get("clauses", []):
        line = _first_failure(clause)
        if line:
            return line
    return str(explanation.get("reason") or "")


def _verdict(verdict: Verdict) -> dict[str, Any]:
    if verdict is None:
        return {"verdict": "pass", "reason": None}
    if verdict == NO_FILTER:
        return {"verdict": "no-filter", "reason": None}
    return {"verdict": "fail", "reason": verdict}


def _clause(f: SubscriptionsAPIFilter, path: str, attributes: Attributes) -> dict[str, Any]:
    dialect = f.dialect
    out: dict[str, Any] = {
        "path": path,
        "dialect": dialect,
        **_verdict(_built(f, lambda: clause_node(f))(attributes)),
    }
    if dialect in ("exact", "prefix", "suffix"):
        spec = f.dialect_value(dialect)
        assert isinstance(spec, dict)
        out["checks"] = _checks(dialect, spec, attributes)
    elif dialect in ("all", "any"):
        children = f.all if dialect == "all" else f.any
        out["children"] = [
            _clause(c, f"{path}.{dialect}[{i}]", attributes) for i, c in enumerate(children or [])
        ]
    elif dialect == "not":
        assert f.not_ is not None
        out["children"] = [_clause(f.not_, f"{path}.not", attributes)]
    else:
        expression = f.cesql or ""
        out["expression"] = expression
        if expression.strip():
            out.update(_cesql(expression, attributes))
    return out


#: Filters built once per spec object (``tail`` explains every event it shows):
#: id(spec) -> (spec, built). The spec is kept, so an id is never reused while cached.
_BUILT: dict[int, tuple[object, Callable[[Attributes], Verdict]]] = {}
_COMPILED: dict[str, Any] = {}
_CACHE_LIMIT = 4096


def _built(
    spec: object, build: Callable[[], Callable[[Attributes], Verdict]]
) -> Callable[[Attributes], Verdict]:
    hit = _BUILT.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    node = build()
    if len(_BUILT) >= _CACHE_LIMIT:
        _BUILT.clear()
    _BUILT[id(spec)] = (spec, node)
    return node


def _cesql(expression: str, attributes: Attributes) -> dict[str, Any]:
    """The expression's value and error, as ``triggers.cesql.explain`` gives them, with
    the compiled expression kept for the next event."""
    from triggers.cesql import CesqlParseError, compile_expression  # only when used

    compiled = _COMPILED.get(expression)
    if compiled is None:
        try:
            compiled = compile_expression(expression)
        except CesqlParseError as exc:
            compiled = exc
        if len(_COMPILED) >= _CACHE_LIMIT:
            _COMPILED.clear()
        _COMPILED[expression] = compiled
    if isinstance(compiled, CesqlParseError):
        return {"value": None, "error": compiled.to_dict()}
    result = compiled.evaluate(attributes)
    return {
        "value": result.value,
        "error": None if result.error is None else result.error.to_dict(),
    }


def _checks(dialect: str, spec: Mapping[str, str], attributes: Attributes) -> list[dict[str, Any]]:
    make = _CHECKS[dialect]
    checks = []
    for name, expected in spec.items():
        value = attributes.get(name)
        checks.append(
            {
                "attribute": name,
                "expected": expected,
                "actual": None if value is None else canonical(value),
                "ok": make({name: expected})(attributes) is None,
            }
        )
    return checks


_WORDS = {"exact": "", "prefix": "prefix ", "suffix": "suffix ", "attributes": ""}


def _first_failure(clause: Mapping[str, Any]) -> str:
    if clause.get("verdict") != "fail":
        return ""
    dialect = clause["dialect"]
    where = f"{clause['path']} {dialect}"
    for check in clause.get("checks", []):
        if not check["ok"]:
            wanted = (
                "present"
                if dialect == "attributes" and not check["expected"]
                else f"{_WORDS[dialect]}{check['expected']!r}"
            )
            if check["actual"] is None:
                return f"{where}: {check['attribute']} is missing (wants {wanted})"
            return f"{where}: {check['attribute']}={check['actual']!r} (wants {wanted})"
    if dialect == "cesql":
        error = clause.get("error")
        if error:
            return f"{where} {clause['expression']!r}: {error['kind']}: {error['message']}"
        return f"{where} {clause['expression']!r} is {clause.get('value')!r}"
    if dialect == "not":
        return f"{where}: the inner clause passed"
    for child in clause.get("children", []):
        line = _first_failure(child)
        if line:
            return line
    return f"{where}: {clause.get('reason')}"
