"""Hostile input: random and mutated expressions and events, pathological sizes.

The engine may only ever raise ``CesqlParseError`` (from ``compile_expression``);
``evaluate``/``matches``/``explain`` never raise, always return a CESQL value,
and finish: inputs are bounded (length, nesting, integer range) and the
algorithms are linear (LIKE, IN, string scanning), so "never hangs" is shown by
running large inputs to completion, not by timing them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triggers.cesql import (
    CesqlError,
    CesqlParseError,
    CompiledExpression,
    ErrorKind,
    Result,
    compile_expression,
    explain,
)
from triggers.cesql.like import compile_like
from triggers.cesql.limits import MAX_DEPTH
from triggers.cesql.values import INT32_MAX, INT32_MIN

from .tck import load_tck

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_WORDS = (
    "( ) , ' \" \\ % _ + - * / = != <> < <= > >= ! AND OR XOR NOT LIKE IN EXISTS TRUE false"
    " id type subject missing myint mybool LOWER CONCAT CONCAT_WS SUBSTRING LEFT ABS INT BOOL"
    " STRING 0 1 -1 2147483647 2147483648 a_b 1abc"
)
VOCABULARY = [*_WORDS.split(), " ", "\t", "\n", "'a%b_c'", "'x'", '"y"', "\u00e9", "\x00"]
VOCABULARY.append("\U0001f600")
TCK_EXPRESSIONS = sorted({case.expression for case in load_tck()})
NAMES = ["id", "type", "source", "subject", "myint", "mybool", "myext", "missing", "x"]

attribute_values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.booleans(),
    st.none(),
    st.binary(max_size=10),
    st.floats(allow_nan=True),
    st.sampled_from(["", "0", "1", "-5", "true", "FALSE", "2147483648", "a%b", "\u00df"]),
)
events = st.dictionaries(st.sampled_from(NAMES), attribute_values, max_size=8).map(
    lambda extra: {"specversion": "1.0", "id": "1", "type": "t", "source": "/s", **extra}
)


def assert_well_formed(result: Result) -> None:
    assert isinstance(result, Result)
    assert type(result.value) in (bool, int, str)
    if type(result.value) is int:
        assert INT32_MIN <= result.value <= INT32_MAX
    if result.error is not None:
        assert isinstance(result.error, CesqlError)
        assert result.error.kind in ErrorKind
        assert result.error.kind is not ErrorKind.PARSE


def try_compile(expression: str) -> CompiledExpression | CesqlParseError:
    """The compiled expression, or the parse error (the only exception allowed)."""
    try:
        return compile_expression(expression)
    except CesqlParseError as error:
        return error


def exercise(expression: str, event: dict[str, object]) -> None:
    """Compile (may fail only with CesqlParseError) and evaluate (may not fail)."""
    compiled = try_compile(expression)
    if isinstance(compiled, CesqlParseError):
        assert 0 <= compiled.position <= len(expression)
        assert compiled.render()
        assert explain(expression, event)["error"]["kind"] == "parse"
        return
    result = compiled.evaluate(event)
    assert_well_formed(result)
    if result.error is not None:
        # Only a hostile *mapping* may cause a generic error; these are dicts.
        assert result.error.kind is not ErrorKind.GENERIC, result.error
    ok, kind = compiled.matches(event)
    assert ok == (result.value is True and result.error is None)
    assert kind == (result.error.kind if result.error else None)
    assert explain(expression, event)["value"] == result.value


@SETTINGS
@given(st.lists(st.sampled_from(VOCABULARY), max_size=40).map(" ".join), events)
def test_random_token_soup(expression: str, event: dict[str, object]) -> None:
    exercise(expression, event)


@SETTINGS
@given(st.lists(st.sampled_from(VOCABULARY), max_size=40).map("".join), events)
def test_random_token_soup_without_spaces(expression: str, event: dict[str, object]) -> None:
    exercise(expression, event)


@SETTINGS
@given(st.text(max_size=80), events)
def test_random_text(expression: str, event: dict[str, object]) -> None:
    exercise(expression, event)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TCK_EXPRESSIONS))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "duplicate", "replace"]))
        if action == "insert":
            text = text[:position] + draw(st.sampled_from(VOCABULARY)) + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 5)) :]
        elif action == "duplicate":
            text = text[:position] + text[position // 2 : position] + text[position:]
        else:
            text = text[:position] + draw(st.characters()) + text[position + 1 :]
    return text


@SETTINGS
@given(mutated(), events)
def test_mutated_tck_expressions(expression: str, event: dict[str, object]) -> None:
    exercise(expression, event)


# -- generated valid expressions ---------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


leaves = st.one_of(
    st.integers(INT32_MIN, INT32_MAX).map(str),
    st.booleans().map(lambda flag: "TRUE" if flag else "FALSE"),
    st.text(max_size=8).map(_quote),
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(lambda name: f"EXISTS {name}"),
)
BINARY = ["AND", "OR", "XOR", "=", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]
FUNCTIONS = ["LENGTH", "CONCAT", "CONCAT_WS", "LOWER", "UPPER", "TRIM", "LEFT", "RIGHT"]
FUNCTIONS += ["SUBSTRING", "ABS", "INT", "BOOL", "STRING", "IS_INT", "NOPE"]


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        children.map(lambda child: f"NOT ({child})"),
        children.map(lambda child: f"-({child})"),
        st.tuples(children, st.text("ab%_\\", max_size=6)).map(
            lambda t: f"({t[0]}) LIKE {_quote(t[1])}"
        ),
        st.tuples(children, st.lists(children, min_size=1, max_size=3)).map(
            lambda t: f"({t[0]}) NOT IN ({', '.join(t[1])})"
        ),
        st.tuples(st.sampled_from(FUNCTIONS), st.lists(children, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
    )


valid_expressions = st.recursive(leaves, _extend, max_leaves=25)


@SETTINGS
@given(valid_expressions, events)
def test_generated_expressions_compile_and_evaluate(
    expression: str, event: dict[str, object]
) -> None:
    compiled = try_compile(expression)
    if isinstance(compiled, CesqlParseError):  # only the nesting limit can reject these
        assert "nested too deeply" in compiled.message
        return
    result = compiled.evaluate(event)
    assert_well_formed(result)
    assert result.error is None or result.error.kind is not ErrorKind.GENERIC
    # evaluation is referentially transparent: same input, same output
    assert compiled.evaluate(dict(event)) == result


# -- LIKE against a reference matcher ----------------------------------------------


def reference_like(pattern: str, text: str) -> bool:
    """Textbook dynamic programming over (pattern item, text position)."""
    items: list[str | None] = []  # None: %, "": _, else a literal char
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "%_":
            items.append("\\" + pattern[index + 1])
            index += 2
            continue
        items.append(None if char == "%" else "" if char == "_" else "\\" + char)
        index += 1
    reachable = {0}
    for item in items:
        if item is None:
            start = min(reachable, default=len(text) + 1)
            reachable = set(range(start, len(text) + 1))
        elif item == "":
            reachable = {pos + 1 for pos in reachable if pos < len(text)}
        else:
            reachable = {pos + 1 for pos in reachable if text[pos : pos + 1] == item[1]}
    return len(text) in reachable


@settings(max_examples=1000, deadline=None)
@given(st.text("ab%_\\", max_size=10), st.text("ab%_\\", max_size=12))
def test_like_matches_reference(pattern: str, text: str) -> None:
    assert compile_like(pattern)(text) == reference_like(pattern, text)


@SETTINGS
@given(st.text("ab%_", min_size=1, max_size=8), st.text("ab", max_size=40))
def test_like_matches_reference_on_longer_texts(pattern: str, text: str) -> None:
    assert compile_like(pattern)(text) == reference_like(pattern, text)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("%a%a%a%a%a%a%a%a%b", "a" * 200_000, False),
        ("%a%a%a%a%a%a%a%a%b", "a" * 200_000 + "b", True),
        ("%a_a_a_a_b%", "a" * 200_000, False),
        ("%" + "a_" * 5_000 + "b%", "a" * 60_000, False),
        ("%a" * 5_000 + "b", "a" * 60_000, False),
        ("_" * 30_000, "x" * 30_000, True),
        ("%" + "%_" * 10_000 + "%", "x" * 9_999, False),
    ],
)
def test_pathological_like_patterns_finish(pattern: str, text: str, expected: bool) -> None:
    expression = compile_expression(f"v LIKE '{pattern}'")
    assert expression.evaluate({"v": text}) == Result(expected, None)


# -- arithmetic against a reference model -------------------------------------------


def _truncated(x: int, y: int) -> tuple[int, int]:
    quotient = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
    return quotient, x - quotient * y


REFERENCE: dict[str, Callable[[int, int], int | None]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": lambda x, y: _truncated(x, y)[0] if y else None,
    "%": lambda x, y: _truncated(x, y)[1] if y else None,
}
int32 = st.one_of(
    st.integers(INT32_MIN, INT32_MAX), st.sampled_from([INT32_MIN, INT32_MAX, 0, -1, 1])
)


@settings(max_examples=500, deadline=None)
@given(int32, st.sampled_from(sorted(REFERENCE)), int32)
def test_arithmetic_matches_reference(x: int, op: str, y: int) -> None:
    exact = REFERENCE[op](x, y)
    result = compile_expression(f"a {op} b").evaluate({"a": str(x), "b": y})
    if exact is None:
        assert result == Result(
            0, CesqlError(ErrorKind.MATH, result.error.message if result.error else "")
        )
    elif INT32_MIN <= exact <= INT32_MAX:
        assert result == Result(exact, None)
    else:
        assert result.value == max(INT32_MIN, min(INT32_MAX, exact))
        assert result.error is not None
        assert result.error.kind is ErrorKind.MATH


# -- stack safety ------------------------------------------------------------------

DEEPEST = "LOWER(" * (MAX_DEPTH - 1) + "id" + ")" * (MAX_DEPTH - 1)


def test_deepest_accepted_expression_evaluates() -> None:
    assert compile_expression(DEEPEST).evaluate({"id": "ABC"}) == Result("abc", None)


def _stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back  # type: ignore[assignment]
    return depth


def test_short_stack_gives_clean_errors_not_recursion_error() -> None:
    compiled = compile_expression(DEEPEST)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 40)
    try:
        with pytest.raises(CesqlParseError, match="too deeply"):
            compile_expression(DEEPEST)
        result = compiled.evaluate({"id": "ABC"})
        ok, kind = compiled.matches({"id": "ABC"})
    finally:
        sys.setrecursionlimit(limit)
    assert result.value == ""
    assert result.error is not None
    assert result.error.kind is ErrorKind.GENERIC
    assert (ok, kind) == (False, ErrorKind.GENERIC)


@SETTINGS
@given(
    st.lists(st.tuples(st.sampled_from(NAMES), st.text("ab1", max_size=3)), min_size=2, max_size=4),
    events,
)
def test_fused_and_of_equalities_agrees_with_the_general_path(
    tests: list[tuple[str, str]], event: dict[str, object]
) -> None:
    terms = [f"{name} = {_quote(literal)}" for name, literal in tests]
    fused = compile_expression(" AND ".join(terms)).evaluate(event)
    general = compile_expression(" AND ".join([*terms[:-1], f"({terms[-1]} OR FALSE)"]))
    assert general.evaluate(event) == fused
