"""The ``exact``, ``prefix`` and ``suffix`` dialects and the legacy ``filter.attributes``.

Every listed attribute must be present and match; a missing attribute is a mismatch.
Values are compared as their canonical strings (Knative compares non-string
attributes as strings), case-sensitively. Each filter is a closure over a tuple of
pairs, built once per trigger.
"""

from __future__ import annotations

from collections.abc import Mapping

from eventing.events import AttributeValue, canonical
from triggers.filters.verdict import FILTERED, Node, Verdict


def _as_str(value: AttributeValue) -> str:
    return value if isinstance(value, str) else canonical(value)


def exact(spec: Mapping[str, str]) -> Node:
    pairs = tuple(spec.items())

    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        for name, expected in pairs:
            value = attributes.get(name)
            if value is None or _as_str(value) != expected:
                return FILTERED
        return None

    return node


def prefix(spec: Mapping[str, str]) -> Node:
    pairs = tuple(spec.items())

    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        for name, start in pairs:
            value = attributes.get(name)
            if value is None or not _as_str(value).startswith(start):
                return FILTERED
        return None

    return node


def suffix(spec: Mapping[str, str]) -> Node:
    pairs = tuple(spec.items())

    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        for name, end in pairs:
            value = attributes.get(name)
            if value is None or not _as_str(value).endswith(end):
                return FILTERED
        return None

    return node


def legacy(spec: Mapping[str, str]) -> Node:
    """``filter.attributes``: exact match, where ``""`` means "present, any value"."""
    pairs = tuple(spec.items())

    def node(attributes: Mapping[str, AttributeValue]) -> Verdict:
        for name, expected in pairs:
            value = attributes.get(name)
            if value is None or value == "":
                return FILTERED
            if expected and _as_str(value) != expected:
                return FILTERED
        return None

    return node
