"""Semantics beyond the TCK: precedence, 32-bit arithmetic, casts, missing
attributes, attribute types, LIKE escapes, IN, built-ins, the filter decision."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping

import pytest

from triggers.cesql import ErrorKind, Result, compile_expression, explain
from triggers.cesql.limits import MAX_STRING_LENGTH

EVENT: dict[str, object] = {
    "specversion": "1.0",
    "id": "1",
    "type": "com.example.a",
    "source": "/s",
    "subject": "x",
    "myint": 10,
    "mybool": True,
    "numeric": "42",
}

MATH, CAST, MISSING = ErrorKind.MATH, ErrorKind.CAST, ErrorKind.MISSING_ATTRIBUTE
FUNCTION = ErrorKind.FUNCTION_EVALUATION


def run(expression: str, attributes: Mapping[str, object] = EVENT) -> tuple[object, object]:
    result = compile_expression(expression).evaluate(attributes)
    return result.value, (result.error.kind if result.error else None)


def check(expression: str, value: object, error: ErrorKind | None = None, **attrs: object) -> None:
    actual_value, actual_error = run(expression, {**EVENT, **attrs})
    assert (type(actual_value), actual_value, actual_error) == (type(value), value, error)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("FALSE AND TRUE OR TRUE", True),  # (FALSE AND TRUE) OR TRUE: left to right
        ("TRUE OR TRUE AND FALSE", False),  # (TRUE OR TRUE) AND FALSE
        ("TRUE XOR TRUE OR TRUE", True),
        ("NOT TRUE = FALSE", True),  # (NOT TRUE) = FALSE
        ("NOT FALSE AND FALSE", False),
        ("2 + 3 * 4", 14),
        ("-2 * 3", -6),
        ("10 - 2 - 3", 5),
        ("100 / 10 / 5", 2),
        ("2 * 3 % 4", 2),
        ("1 < 2 = TRUE", True),
        ("1 + 2 LIKE '2'", 2),  # LIKE binds tighter: 1 + (2 LIKE '2') = 1 + TRUE
        ("1 + 1 IN (1)", 2),
        ("'a' LIKE 'a' IN (TRUE)", True),
        ("- - 5", 5),
        ("5 -3", 2),
        ("5 - -3", 8),
        ("+5 + +5", 10),
        ("(((1)))", 1),
    ],
)
def test_precedence_and_associativity(expression: str, value: object) -> None:
    check(expression, value)


@pytest.mark.parametrize(
    ("expression", "value", "error"),
    [
        ("-7 / 2", -3, None),
        ("7 / -2", -3, None),
        ("-7 % 2", -1, None),
        ("7 % -2", 1, None),
        ("-7 % -2", -1, None),
        ("2147483647 + 1", 2147483647, MATH),
        ("-2147483648 - 1", -2147483648, MATH),
        ("65536 * 65536", 2147483647, MATH),
        ("-65536 * 65536", -2147483648, MATH),
        ("-2147483648 / -1", 2147483647, MATH),
        ("-2147483648 % -1", 0, None),
        ("-(-2147483648)", 2147483647, MATH),
        ("ABS(-2147483647)", 2147483647, None),
        ("1 / 0 + 5", 5, MATH),
        ("2147483647 + 1 - 1", 2147483646, MATH),
    ],
)
def test_integer_arithmetic_is_32_bit(expression: str, value: int, error: ErrorKind | None) -> None:
    check(expression, value, error)


@pytest.mark.parametrize(
    ("expression", "value", "error"),
    [
        ("'+5' + 0", 5, None),
        ("'-0005' + 0", -5, None),
        ("' 1' + 0", 0, CAST),
        ("'1 ' + 0", 0, CAST),
        ("'1_000' + 0", 0, CAST),
        ("'\u0663' + 0", 0, CAST),  # ARABIC-INDIC DIGIT THREE: not ASCII
        ("'2147483648' + 0", 0, CAST),
        ("'-2147483648' + 0", -2147483648, None),
        ("'' + 0", 0, CAST),
        ("'abc' = 1", False, CAST),
        ("'abc' = 0", True, CAST),  # the failed cast gives 0, which equals 0
        ("BOOL('tRuE')", True, None),
        ("BOOL('yes')", False, CAST),
        ("BOOL('')", False, CAST),
        ("TRUE = 'true'", True, None),
        ("TRUE = 'TRUE'", False, None),
        ("FALSE = 'false'", True, None),
        ("1 = TRUE", True, None),  # TRUE cast to the left? no: left 1 cast to Boolean
        ("TRUE = 1", True, None),
        ("2 = TRUE", True, None),
        ("'2' = 2", True, None),
        ("2 = '02'", False, None),  # right is String: 2 becomes '2'
        ("STRING(007)", "7", None),
        ("INT(TRUE) + INT('12')", 13, None),
        ("IS_INT('12') AND NOT IS_INT('x') AND IS_BOOL('False')", True, None),
        ("LENGTH(12345)", 5, None),
    ],
)
def test_casts(expression: str, value: object, error: ErrorKind | None) -> None:
    check(expression, value, error)


@pytest.mark.parametrize(
    ("expression", "value", "error"),
    [
        ("(missing = 1) OR TRUE", False, MISSING),  # the zero value of the whole expression
        ("TRUE OR missing", True, None),  # never evaluated
        ("FALSE AND missing", False, None),
        ("missing AND FALSE", False, MISSING),
        ("CONCAT('a', missing)", "", MISSING),
        ("LENGTH(missing) + 1", 0, MISSING),
        ("1 / missing", 0, MISSING),
        ("missing / 0", 0, MISSING),
        ("(1 / 0) + missing", 0, MATH),  # the first error wins; the value is still zero
        ("NOT missing", False, MISSING),
        ("-missing", 0, MISSING),
        ("missing IN (1, 2)", False, MISSING),
        ("1 IN (1, missing)", True, None),  # stops at the first match
        ("1 IN (missing, 1)", False, MISSING),
        ("EXISTS missing", False, None),
        ("NOT EXISTS missing", True, None),
        ("missing", False, MISSING),
        ("ID = '1' AND SUBJECT = 'x'", True, None),  # attribute names are case-insensitive
    ],
)
def test_missing_attributes(expression: str, value: object, error: ErrorKind | None) -> None:
    check(expression, value, error)


def test_exists_is_true_for_required_attributes_even_if_absent() -> None:
    assert run("EXISTS id AND EXISTS SOURCE AND EXISTS type AND EXISTS specversion", {}) == (
        True,
        None,
    )
    assert run("EXISTS subject", {"subject": None}) == (False, None)
    assert run("subject", {"subject": None}) == (False, MISSING)


@pytest.mark.parametrize(
    ("expression", "attributes", "value", "error"),
    [
        ("myint = 10", {"myint": 10}, True, None),
        ("myint = '10'", {"myint": 10}, True, None),
        ("myint + 1", {"myint": 10}, 11, None),
        ("myint", {"myint": 10}, 10, None),
        ("mybool", {"mybool": True}, True, None),
        ("mybool = 'true'", {"mybool": True}, True, None),
        ("numeric = 42", {"numeric": "42"}, True, None),
        ("numeric < 100", {"numeric": "42"}, True, None),
        ("big LIKE '1099%'", {"big": 2**40}, True, None),  # not a 32-bit Integer: a String
        ("big + 0", {"big": 2**40}, 0, CAST),
        ("bin = 'AAE='", {"bin": b"\x00\x01"}, True, None),  # Binary as base64
        ("f = '1.5'", {"f": 1.5}, True, None),
        (
            "t LIKE '2018-04-26T14:48:09%'",
            {"t": datetime.datetime(2018, 4, 26, 14, 48, 9)},
            True,
            None,
        ),
        ("s = 'x'", {"s": ErrorKind.GENERIC}, False, None),  # str subclass: its str value
        ("s = 'generic'", {"s": ErrorKind.GENERIC}, True, None),
    ],
)
def test_attribute_value_types(
    expression: str, attributes: dict[str, object], value: object, error: ErrorKind | None
) -> None:
    assert run(expression, attributes) == (value, error)
    assert type(run(expression, attributes)[0]) is type(value)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("'a\\'b'", "a'b"),
        ('"a\\"b"', 'a"b'),
        ("'a\\\\'", "a\\\\"),  # backslash pairs are kept verbatim
        ('"a\\\'b"', "a\\'b"),  # \' is only an escape inside '...'
        ("'tab\\tx'", "tab\\tx"),  # no C escapes
        ("'multi\nline'", "multi\nline"),
        ("'\u65e5\u672c'", "\u65e5\u672c"),
    ],
)
def test_string_literals(expression: str, value: str) -> None:
    check(expression, value)


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("ab\\c", "ab\\c", True),  # backslash before a normal character is literal
        ("a%", "a\\%", True),
        ("ab", "a\\%", False),
        ("a_", "a\\_", True),
        ("ab", "a\\_", False),
        ("a\\%", "a\\\\%", True),  # '\\' then '\%': a literal backslash, a literal %
        ("a\\xyz", "a\\\\%", False),
        ("ab\\\\", "ab\\\\", True),  # two literal backslashes at the end
        ("", "%", True),
        ("", "_", False),
        ("", "", True),
        ("abc", "%%%", True),
        ("abc", "%b%", True),
        ("abc", "_b_", True),
        ("abc", "%c%c", False),
        ("aXbYc", "a_b_c", True),
        ("\u65e5", "_", True),  # one code point
        ("\U0001f600x", "__", True),
        ("ABC", "abc", False),  # case-sensitive
        ("a\nb", "a_b", True),
        ("xaaab", "%a_ab", True),
        ("xaaab", "%a__b", True),
        ("xab", "%a_ab", False),
        ("abcabd", "%abd", True),
        ("abcab", "%ab_ab%", True),
        ("abab", "%ab_ab%", False),
        ("aaxaa", "%a_a%a", True),
    ],
)
def test_like(value: str, pattern: str, expected: bool) -> None:
    assert run(f"v LIKE '{pattern}'", {"v": value}) == (expected, None)
    assert run(f"v NOT LIKE '{pattern}'", {"v": value}) == (not expected, None)


@pytest.mark.parametrize(
    ("expression", "value", "error"),
    [
        ("1 IN (1, 1 / 0)", True, None),
        ("2 IN (1 / 0, 2)", True, MATH),
        ("1 IN ('one', 1)", True, CAST),
        ("1 IN (1, 'one')", True, None),
        ("x IN ('a', 'b')", False, CAST),  # x is an Integer: 'a' does not cast
        ("x IN (5, 'a')", True, None),
        ("x NOT IN (6, 7)", True, None),
        ("'5' IN (x)", True, None),
        ("x IN (TRUE)", False, None),  # TRUE cast to Integer is 1
        ("y IN (TRUE)", True, None),  # y is a String: TRUE becomes 'true'
        ("y IN ('TRUE')", False, None),
        ("z IN (1)", True, None),
    ],
)
def test_in(expression: str, value: bool, error: ErrorKind | None) -> None:
    assert run(expression, {"x": 5, "y": "true", "z": True}) == (value, error)


@pytest.mark.parametrize(
    ("expression", "value", "error"),
    [
        ("LENGTH('\U0001f600')", 1, None),
        ("UPPER('stra\u00dfe')", "STRASSE", None),
        ("LOWER('\u00c9T\u00c9')", "\u00e9t\u00e9", None),
        ("TRIM('\u3000\u00a0 a \t\n')", "a", None),
        ("LENGTH(TRIM('\x1c a \x1f'))", 5, None),  # not Unicode White_Space: kept
        ("LEFT('abc', 0)", "", None),
        ("RIGHT('abc', 0)", "", None),
        ("RIGHT('abc', 1)", "c", None),
        ("SUBSTRING('abc', 3)", "c", None),
        ("SUBSTRING('abc', 4)", "", FUNCTION),
        ("SUBSTRING('abc', -3)", "abc", None),
        ("SUBSTRING('abc', -4)", "", FUNCTION),
        ("SUBSTRING('abc', 2, 0)", "", None),
        ("SUBSTRING('abc', 2, -1)", "", FUNCTION),
        ("SUBSTRING('abc', 2, 100)", "bc", None),
        ("SUBSTRING('', 0)", "", None),
        ("CONCAT_WS('-', 1, TRUE, 'x')", "1-true-x", None),
        ("concat('a', 'b')", "ab", None),
        ("ABS(TRUE)", 1, None),
        ("LEFT('abc', 'x')", "", CAST),  # 'x' -> 0 with a cast error
    ],
)
def test_builtins(expression: str, value: object, error: ErrorKind | None) -> None:
    check(expression, value, error)


def test_function_string_sizes_are_bounded() -> None:
    big = "a" * (MAX_STRING_LENGTH // 2 + 1)
    assert run("CONCAT(big, big)", {"big": big}) == ("", FUNCTION)
    assert run("LENGTH(CONCAT(big, 'x'))", {"big": big}) == (len(big) + 1, None)
    assert run("LENGTH(UPPER(big))", {"big": big}) == (len(big), None)
    assert run("big = big", {"big": big}) == (True, None)
    wide = "\u00df" * (MAX_STRING_LENGTH // 2 + 1)  # UPPER doubles it: 'SS'
    assert run("UPPER(wide)", {"wide": wide}) == ("", FUNCTION)


def test_matches_requires_boolean_true_and_no_error() -> None:
    assert compile_expression("id = '1'").matches(EVENT) == (True, None)
    assert compile_expression("id = '2'").matches(EVENT) == (False, None)
    assert compile_expression("'abc'").matches(EVENT) == (False, None)
    assert compile_expression("myint").matches(EVENT) == (False, None)
    assert compile_expression("1").matches(EVENT) == (False, None)
    assert compile_expression("mybool").matches(EVENT) == (True, None)
    assert compile_expression("TRUE OR 1 / 0 = 0").matches(EVENT) == (True, None)
    # a true value with an error is not a match
    assert compile_expression("TRUE AND (1 != 1 / 0)").matches(EVENT) == (False, MATH)
    assert compile_expression("nothere = 'x'").matches(EVENT) == (False, MISSING)
    assert compile_expression("FOO()").matches(EVENT) == (False, ErrorKind.MISSING_FUNCTION)


@pytest.mark.parametrize(
    ("expression", "result_type"),
    [
        ("'a'", str),
        ("1 + 1", int),
        ("id", None),
        ("id = 'x'", bool),
        ("FOO()", bool),
        ("LOWER(id)", str),
        ("-id", int),
        ("EXISTS id", bool),
        ("a AND b", bool),
    ],
)
def test_result_type(expression: str, result_type: type | None) -> None:
    assert compile_expression(expression).result_type is result_type


class _Exploding(Mapping[str, object]):
    def __getitem__(self, key: str) -> object:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 0


class _BadStr:
    def __str__(self) -> str:
        raise ValueError("no")


@pytest.mark.parametrize(
    "attributes", [_Exploding(), None, {"id": _BadStr()}, 42, {"id": object()}]
)
def test_evaluate_never_raises(attributes: object) -> None:
    expression = compile_expression("LOWER(id) = 'x'")
    result = expression.evaluate(attributes)  # type: ignore[arg-type]
    assert result.value is False
    ok, kind = expression.matches(attributes)  # type: ignore[arg-type]
    assert ok is False
    if result.error is not None:
        assert kind is result.error.kind


def test_generic_error_for_a_broken_mapping() -> None:
    result = compile_expression("id = 'x'").evaluate(_Exploding())
    assert result.value is False
    assert result.error is not None
    assert result.error.kind is ErrorKind.GENERIC
    assert "RuntimeError" in result.error.message


def test_result_is_a_named_pair() -> None:
    value, error = compile_expression("1 / 0").evaluate({})
    assert value == 0
    assert error is not None
    assert error.kind is ErrorKind.MATH
    assert isinstance(compile_expression("1").evaluate({}), Result)


def test_explain() -> None:
    assert explain("id = '1'", EVENT) == {"value": True, "error": None}
    assert explain("nothere * 5", EVENT) == {
        "value": 0,
        "error": {"kind": "missingAttribute", "message": "missing attribute 'nothere'"},
    }
    report = explain("1 / 0", EVENT)
    assert report["value"] == 0
    assert report["error"]["kind"] == "math"
    assert set(report["error"]) == {"kind", "message"}


def test_error_kinds_are_the_tck_names() -> None:
    assert [kind.value for kind in ErrorKind] == [
        "parse",
        "math",
        "cast",
        "missingAttribute",
        "missingFunction",
        "functionEvaluation",
        "generic",
    ]
    assert ErrorKind("missingAttribute") == "missingAttribute"


@pytest.mark.parametrize(
    ("attributes", "value", "error"),
    [
        ({"type": "t", "myint": 10, "mybool": True}, True, None),
        ({"type": "t", "myint": "10", "mybool": "true"}, True, None),
        ({"type": "t", "myint": 11, "mybool": True}, False, None),
        ({"type": "u", "myint": 10}, False, None),  # decided before reading mybool
        ({"type": "t", "myint": 10}, False, MISSING),
        ({"type": "t", "myint": 2**40, "mybool": True}, False, None),
        ({"type": None, "myint": 10, "mybool": True}, False, MISSING),
    ],
)
def test_and_of_string_equalities(
    attributes: dict[str, object], value: bool, error: ErrorKind | None
) -> None:
    """The fused fast path for `a = 'x' AND b = 'y' ...` keeps the full semantics."""
    fused = "type = 't' AND myint = '10' AND mybool = 'true'"
    unfused = "type = 't' AND myint = '10' AND (mybool = 'true' OR FALSE)"
    assert run(fused, attributes) == (value, error)
    assert run(unfused, attributes) == (value, error)
