"""The guards of a trigger's filter, for the broker's trigger index.

A :class:`~eventing.broker.index.Guard` is a condition every event passing the filter
meets *and* whose failure makes the filter's verdict exactly ``"filtered"``; the index
then never asks the filter about events that fail it. So a guard is taken only where
the filter's own evaluation order guarantees both:

- the ``filters`` array and ``all`` are ANDs that stop at the first failing clause
  (:func:`triggers.filters.logical.all_of`): a clause's guards count only when every
  clause before it can fail with nothing but ``"filtered"`` (the attribute dialects
  and all/any/not of them; a CESQL clause can fail with ``cesql:<kind>``);
- ``exact``, ``prefix`` and ``suffix`` fail with ``"filtered"`` on any mismatch or
  missing attribute (loose guards: the canonical string is compared); the legacy
  ``filter.attributes`` likewise for each non-empty value;
- a CESQL expression contributes only its *first* AND operand (recursively), when it
  is ``name = 'string literal'``, ``name LIKE 'prefix%'`` or ``name LIKE '%suffix'``
  (no other wildcard or escape): CESQL evaluates it first, and for a ``str``
  attribute that differs it is ``false`` without error, so AND stops there. A
  missing attribute is an error and a non-string value is cast, so these guards are
  *strict*: such events are asked.
  Anything else (OR, NOT, functions, a ``data.`` path first, a literal on the left)
  is not indexed.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventing.broker.index import Guard
from eventing.resources.trigger import SubscriptionsAPIFilter, TriggerSpec


def guards(spec: TriggerSpec) -> tuple[Guard, ...]:
    """Every guard of the trigger's filter, loose exact ones first (the most selective)."""
    found: list[Guard] = []
    if spec.filters:
        _clauses(spec.filters, found)
    elif spec.filter is not None:
        found.extend(Guard(n, v) for n, v in spec.filter.attributes.items() if v != "")
    return tuple(sorted(found, key=lambda g: (g.prefix or g.suffix, g.strict)))


def _clauses(clauses: Iterable[SubscriptionsAPIFilter], found: list[Guard]) -> None:
    for clause in clauses:
        _clause(clause, found)
        if not _filtered_only(clause):
            return  # a later clause's failure could be preceded by this one's error


def _clause(f: SubscriptionsAPIFilter, found: list[Guard]) -> None:
    if f.exact is not None:
        found.extend(Guard(n, v) for n, v in f.exact.items())
    elif f.prefix is not None:
        found.extend(Guard(n, v, prefix=True) for n, v in f.prefix.items())
    elif f.suffix is not None:
        found.extend(Guard(n, v, suffix=True) for n, v in f.suffix.items())
    elif f.all is not None:
        _clauses(f.all, found)
    elif f.cesql is not None and f.cesql.strip():
        found.extend(cesql_guards(f.cesql))


def _filtered_only(f: SubscriptionsAPIFilter) -> bool:
    """Whether the clause can only pass, be no filter, or fail with ``"filtered"``."""
    if f.cesql is not None:
        return not f.cesql.strip()  # blank: no filter; else it may err
    children = [*(f.all or []), *(f.any or []), *([f.not_] if f.not_ is not None else [])]
    return all(_filtered_only(child) for child in children)


def cesql_guards(expression: str) -> list[Guard]:
    """The strict guard of a CESQL expression's leading conjunct, if it has one."""
    from triggers.cesql import CesqlParseError
    from triggers.cesql.nodes import Chain, Identifier, Level, Like, Literal
    from triggers.cesql.parser import parse

    try:
        node = parse(expression)
    except CesqlParseError:
        return []
    while isinstance(node, Chain) and node.level == Level.LOGIC:
        if any(op != "AND" for op in node.ops):
            return []
        node = node.operands[0]
    if isinstance(node, Chain) and node.level == Level.COMPARISON and node.ops == ("=",):
        left, right = node.operands
        literal = right.value if isinstance(right, Literal) else None
        if isinstance(left, Identifier) and type(literal) is str:
            return [Guard(left.name, literal, strict=True)]
    if isinstance(node, Like) and not node.negated and isinstance(node.operand, Identifier):
        pattern, name = node.pattern, node.operand.name
        head, tail = pattern[:-1], pattern[1:]
        if pattern.endswith("%") and not any(c in head for c in "%_\\"):
            return [Guard(name, head, prefix=True, strict=True)]
        if pattern.startswith("%") and not any(c in tail for c in "%_\\"):
            return [Guard(name, tail, suffix=True, strict=True)]
    return []
