"""The JSON nesting pre-check (``jsonformat._nesting_exceeds``) answers as the plain
character loop it replaced does, on any text: the regex form must never let a deeper
document through to the parser, nor refuse one the loop accepted."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventing.codec.jsonformat import _MAX_DEPTH, _nesting_exceeds, loads
from eventing.errors import InvalidEventError


def reference(text: str, limit: int) -> bool:
    """The character loop, kept here as the specification."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet='[]{}"\\ax\n', max_size=200), st.integers(min_value=0, max_value=8))
def test_same_answer_as_the_character_loop(text: str, limit: int) -> None:
    assert _nesting_exceeds(text, limit) == reference(text, limit)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 65 + "]" * 65,
        '{"a":' * 65 + "1" + "}" * 65,
        '["' + "[" * 100 + '"]' + "[" * 65,
        '"\\"' + "[" * 65,  # an escaped quote does not end the string: all inside it
        '"\\\\"' + "[" * 65,  # an escaped backslash does: the brackets are outside
        "[" * 65 + '"',
        "[]" * 1000,
    ],
)
def test_edges(text: str) -> None:
    assert _nesting_exceeds(text, _MAX_DEPTH) == reference(text, _MAX_DEPTH)


def test_a_deep_document_is_refused_and_a_wide_one_parsed() -> None:
    with pytest.raises(InvalidEventError, match="nesting deeper than 64"):
        loads(("[" * 65 + "]" * 65).encode())
    wide = [{"id": str(i), "data": {"a": [1, {"b": "]]]}}}"}]}} for i in range(500)]
    assert loads(json.dumps(wide).encode()) == wide
