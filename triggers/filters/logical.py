"""The ``all``, ``any`` and ``not`` dialects, with Knative's tri-state rules:

* ``all``: fails at the first failing child (short-circuit); passes if any child
  passed and none failed; no-filter if every child is no-filter (or there are none).
* ``any``: passes at the first passing child (short-circuit); no-filter if every
  child is no-filter; otherwise fails with the first failure's reason.
* ``not``: swaps pass and fail; no-filter stays no-filter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eventing.events import AttributeValue
from triggers.filters.verdict import FILTERED, NO_FILTER, Node, Verdict


def all_of(children: Sequence[Node]) -> Node:
    nodes = tuple(children)
    if len(nodes) == 1:
        return nodes[0]

    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        result: Verdict = NO_FILTER
        for child in nodes:
            verdict = child(attributes)
            if verdict is None:
                result = None
            elif verdict != NO_FILTER:
                return verdict
        return result

    return node


def any_of(children: Sequence[Node]) -> Node:
    nodes = tuple(children)

    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        first_failure: Verdict = NO_FILTER
        for child in nodes:
            verdict = child(attributes)
            if verdict is None:
                return None
            if verdict != NO_FILTER and first_failure == NO_FILTER:
                first_failure = verdict
        return first_failure

    return node


def not_(child: Node) -> Node:
    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        verdict = child(attributes)
        if verdict is None:
            return FILTERED
        if verdict == NO_FILTER:
            return NO_FILTER
        return None

    return node
