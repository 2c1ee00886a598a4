"""Turn a Trigger's filter spec into one callable, once per trigger.

Knative's precedence: a non-empty ``filters`` array wins (its entries are ANDed);
otherwise the legacy ``filter.attributes``; otherwise everything passes. The result
follows :class:`eventing.broker.base.Filter`: ``None`` to deliver, else the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from eventing.broker.index import Guard
from eventing.broker.routing import NEEDS_DATA
from eventing.events import AttributeValue
from eventing.resources.base import Resource
from eventing.resources.trigger import SubscriptionsAPIFilter, Trigger, TriggerSpec
from triggers.filters import attributes as attr
from triggers.filters import logical
from triggers.filters.verdict import NO_FILTER, Node, Verdict
from triggers.guards import guards as guards_of

if TYPE_CHECKING:
    from triggers.cesql import FunctionRegistry


class TriggerFilter:
    """The materialised filter of one trigger (satisfies ``eventing.broker.base.Filter``
    and, with its ``guards`` for the broker's trigger index, ``eventing.broker.index.Guarded``)."""

    __slots__ = ("_node", "guards")

    def __init__(self, node: Node | None, guards: tuple[Guard, ...] = ()) -> None:
        self._node = node
        self.guards = guards

    def __call__(self, attributes: Mapping[str, AttributeValue], /) -> str | None:
        if self._node is None:
            return None
        verdict: Verdict = self._node(attributes)
        return None if verdict == NO_FILTER else verdict


class DataTriggerFilter(TriggerFilter):
    """A trigger whose CESQL reads the event's data (``data.`` paths, our extension):
    it answers :data:`~eventing.broker.routing.NEEDS_DATA`, and the broker asks again
    with the data (satisfies ``eventing.broker.routing.DataFilter``). A separate class,
    so every other trigger's filter keeps its one-branch call."""

    __slots__ = ()

    def __call__(self, attributes: Mapping[str, AttributeValue], /) -> str | None:
        return NEEDS_DATA

    def with_data(
        self,
        attributes: Mapping[str, AttributeValue],
        data: bytes | None,
        scratch: dict[str, object],
        /,
    ) -> str | None:
        from triggers.cesql.payload import data_view

        view = data_view(attributes, data, scratch)
        return super().__call__(view)  # type: ignore[arg-type]


def materialize(spec: TriggerSpec, functions: FunctionRegistry | None = None) -> TriggerFilter:
    if spec.filters:
        node = logical.all_of([clause_node(f, functions) for f in spec.filters])
        if any(_reads_data(f) for f in spec.filters):
            return DataTriggerFilter(node, guards_of(spec))
        return TriggerFilter(node, guards_of(spec))
    if spec.filter is not None and spec.filter.attributes:
        return TriggerFilter(attr.legacy(spec.filter.attributes), guards_of(spec))
    return TriggerFilter(None)


def clause_node(f: SubscriptionsAPIFilter, functions: FunctionRegistry | None = None) -> Node:
    """One entry of ``filters`` (or a child of all/any/not) as a node; ``triggers.explain``
    uses it to give each clause the verdict the broker itself computes."""
    if f.exact is not None:
        return attr.exact(f.exact)
    if f.prefix is not None:
        return attr.prefix(f.prefix)
    if f.suffix is not None:
        return attr.suffix(f.suffix)
    if f.all is not None:
        return logical.all_of([clause_node(c, functions) for c in f.all])
    if f.any is not None:
        return logical.any_of([clause_node(c, functions) for c in f.any])
    if f.not_ is not None:
        return logical.not_(clause_node(f.not_, functions))
    assert f.cesql is not None
    from triggers.filters.cesql import cesql  # the engine loads only when a trigger uses it

    return cesql(f.cesql, functions)


def _reads_data(f: SubscriptionsAPIFilter) -> bool:
    if f.cesql is not None and f.cesql.strip():
        from triggers.cesql import compile_expression

        return compile_expression(f.cesql).reads_data
    children = [*(f.all or []), *(f.any or []), *([f.not_] if f.not_ is not None else [])]
    return any(_reads_data(child) for child in children)


def check_trigger(resource: Resource) -> Iterable[tuple[str, object, str]]:
    """Load-time check: every CESQL expression parses (errors carry a caret)."""
    if not isinstance(resource, Trigger):
        return []
    errors: list[tuple[str, object, str]] = []
    for index, f in enumerate(resource.spec.filters):
        _check(f, f"spec.filters[{index}]", errors)
    return errors


def _check(f: SubscriptionsAPIFilter, path: str, errors: list[tuple[str, object, str]]) -> None:
    if f.cesql is not None and f.cesql.strip():
        from triggers.cesql import CesqlParseError, compile_expression

        try:
            compiled = compile_expression(f.cesql)
        except CesqlParseError as exc:
            errors.append((f"{path}.cesql", f.cesql, "invalid CESQL:\n" + exc.render()))
        else:
            if compiled.result_type in (int, str):
                kind = "an Integer" if compiled.result_type is int else "a String"
                errors.append(
                    (
                        f"{path}.cesql",
                        f.cesql,
                        f"a filter expression must be Boolean; this one is {kind}, "
                        "so it could never match",
                    )
                )
    for name in ("all", "any"):
        children = getattr(f, name)
        for i, child in enumerate(children or []):
            _check(child, f"{path}.{name}[{i}]", errors)
    if f.not_ is not None:
        _check(f.not_, f"{path}.not", errors)


def exact_attributes(spec: TriggerSpec) -> dict[str, str]:
    """Attribute values every event passing this trigger's filter has: the ``exact``
    filters ANDed at the top level (or inside a top-level ``all``), or the legacy
    filter's non-empty values. A server can filter on these (a RabbitMQ headers
    binding with ``x-match: all``); the materialised filter still decides."""
    found: dict[str, str] = {}
    if spec.filters:
        _collect_exact(spec.filters, found)
    elif spec.filter is not None:
        found.update({k: v for k, v in spec.filter.attributes.items() if v != ""})
    return found


def _collect_exact(filters: Iterable[SubscriptionsAPIFilter], found: dict[str, str]) -> None:
    for f in filters:
        if f.exact is not None:
            for name, value in f.exact.items():
                found.setdefault(name, value)
        elif f.all is not None:
            _collect_exact(f.all, found)
