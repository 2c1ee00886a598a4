"""Parse errors: reported at compile time, with the exact position and a caret."""

from __future__ import annotations

import pytest

from triggers.cesql import CesqlError, CesqlParseError, ErrorKind, compile_expression, explain
from triggers.cesql.limits import MAX_DEPTH, MAX_EXPRESSION_LENGTH


def parse_error(expression: str) -> CesqlParseError:
    with pytest.raises(CesqlParseError) as caught:
        compile_expression(expression)
    return caught.value


@pytest.mark.parametrize(
    ("expression", "position", "fragment"),
    [
        ("", 0, "empty expression"),
        (" \t\r\n", 0, "empty expression"),
        ("ABC(", 4, "unexpected end of expression"),
        ("x LIKE 123", 7, "LIKE pattern must be a string literal"),
        ("x LIKE y", 7, "LIKE pattern must be a string literal"),
        ("x LIKE", 6, "LIKE pattern must be a string literal"),
        ("(1 + 2", 6, "')' to close '(' at position 0"),
        ("CONCAT('a', 'b'", 15, "')' to close '(' at position 6"),
        ("1 + 2)", 5, "unexpected ')'"),
        ("'abc", 0, "unterminated string literal"),
        ('a = "x\\"', 4, "unterminated string literal"),
        ("a = 'it''s'", 8, "unexpected string literal"),
        ("2147483648", 0, "out of the 32-bit range"),
        ("1 + -2147483649", 4, "out of the 32-bit range"),
        ("+2147483648", 0, "out of the 32-bit range"),
        ("99999999999999999999999999999999", 0, "out of the 32-bit range"),
        ("a_b = 1", 0, "not a valid attribute name"),
        ("EXISTS a_b", 7, "not a valid attribute name"),
        ("abc1(2)", 0, "not a valid function name"),
        ("x IN ()", 6, "at least one element"),
        ("x IN 1", 5, "'(' to start the IN set"),
        ("x IN (1, 2", 10, "')' to close '(' at position 5"),
        ("x NOT 5", 6, "LIKE or IN after NOT"),
        ("EXISTS 'a'", 7, "attribute name after EXISTS"),
        ("EXISTS", 6, "attribute name after EXISTS"),
        ("+x", 0, "no unary plus"),
        ("+ 5", 0, "no unary plus"),
        ("a == b", 3, "unexpected '='"),
        ("a ! b", 2, "'!' must be followed by '='"),
        ("a # b", 2, "unexpected character '#'"),
        ("a\u00e9", 1, "unexpected character"),
        ("a = 1;", 5, "unexpected character ';'"),
        ("TRUE FALSE", 5, "unexpected keyword FALSE"),
        ("a b", 2, "expected an operator or the end of the expression"),
        ("NOT", 3, "unexpected end of expression"),
        ("1 +", 3, "unexpected end of expression"),
        ("AND", 0, "unexpected keyword AND"),
        ("f(1,)", 4, "unexpected ')'"),
        ("f(,1)", 2, "unexpected ','"),
        ("()", 1, "unexpected ')'"),
        ("5(1)", 1, "unexpected '('"),
        ("TRUE(1)", 4, "unexpected '('"),
    ],
)
def test_parse_error_position_and_message(expression: str, position: int, fragment: str) -> None:
    error = parse_error(expression)
    assert error.position == position, error.render()
    assert fragment in error.message, error.render()
    assert error.expression == expression
    assert error.kind is ErrorKind.PARSE


def test_parse_error_is_a_cesql_error() -> None:
    error = parse_error("x LIKE 123")
    assert isinstance(error, CesqlError)
    assert str(error) == f"{error.message} (at position 7)"
    assert error.to_dict() == {"kind": "parse", "message": error.message, "position": 7}


def test_render_puts_a_caret_under_the_position() -> None:
    assert parse_error("x LIKE 123").render() == (
        "CESQL parse error at position 7: the LIKE pattern must be a string literal, "
        "not integer literal 123\n"
        "  x LIKE 123\n"
        "         ^"
    )


def test_render_at_end_of_expression() -> None:
    lines = parse_error("ABC(").render().splitlines()
    assert lines[1:] == ["  ABC(", "      ^"]


def test_render_multi_line_expression_shows_the_line_and_column() -> None:
    error = parse_error("type = 'a'\nAND source ==\n'b'")
    assert error.position == 23
    assert error.line_and_column() == (2, 13)
    lines = error.render().splitlines()
    assert lines[0].startswith("CESQL parse error at position 23, line 2, column 13:")
    assert lines[1:] == ["  AND source ==", "              ^"]


def test_render_keeps_caret_aligned_after_tabs_and_wide_characters() -> None:
    error = parse_error("'\u65e5\u672c'\t= #")
    lines = error.render().splitlines()
    assert lines[1] == "  '\u65e5\u672c' = #"  # the tab is shown as one space
    # the two wide characters take two columns each
    assert lines[2] == "  " + " " * 9 + "^"


def test_render_cuts_long_lines_around_the_position() -> None:
    expression = "a = 1 AND " * 50 + "b ! c" + " OR d" * 50
    error = parse_error(expression)
    line, caret = error.render().splitlines()[1:]
    assert line.startswith("  ...")
    assert line.endswith("...")
    assert line[caret.index("^")] == "!"
    assert len(line) < 140


def test_explain_reports_parse_errors_with_position() -> None:
    assert explain("x LIKE 123", {"id": "1"}) == {
        "value": None,
        "error": {
            "kind": "parse",
            "message": "the LIKE pattern must be a string literal, not integer literal 123",
            "position": 7,
        },
    }


def test_non_string_expression_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        compile_expression(42)  # type: ignore[arg-type]


# -- limits -------------------------------------------------------------------


def test_expression_length_is_bounded() -> None:
    longest = "'" + "a" * (MAX_EXPRESSION_LENGTH - 2) + "'"
    assert compile_expression(longest).evaluate({}).value == "a" * (MAX_EXPRESSION_LENGTH - 2)
    error = parse_error(longest + " ")
    assert error.position == MAX_EXPRESSION_LENGTH
    assert "too long" in error.message


def test_parentheses_nesting_is_bounded() -> None:
    ok = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    assert compile_expression(ok).evaluate({}).value == 1
    error = parse_error("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    assert error.position == MAX_DEPTH
    assert "nested too deeply" in error.message


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 20_000 + "1" + ")" * 20_000,
        "NOT " * 10_000 + "TRUE",
        "-" * 60_000 + "1",
        "LOWER(" * 5_000 + "'a'" + ")" * 5_000,
        "x IN (" * 5_000 + "1" + ")" * 5_000,
        "x" + " LIKE 'a'" * 5_000,
        "x" + " IN (TRUE)" * 5_000,
        "(((((" * 2_000,
    ],
)
def test_deep_nesting_is_a_parse_error_not_a_crash(expression: str) -> None:
    assert "nested too deeply" in parse_error(expression).message


def test_flat_operator_chains_are_not_nesting() -> None:
    assert compile_expression("1" + " + 1" * 15_000).evaluate({}).value == 15_001
    assert compile_expression(" AND ".join(["TRUE"] * 7_000)).evaluate({}).value is True
    assert compile_expression(" OR ".join(["id = 'x'"] * 5_000)).evaluate({"id": "x"}).value is True
    assert (
        compile_expression("x IN (" + ", ".join(["1"] * 15_000) + ")").evaluate({"x": "1"}).value
        is True
    )


def test_integer_literal_range_edges() -> None:
    assert compile_expression("-2147483648").evaluate({}).value == -(2**31)
    assert compile_expression("2147483647").evaluate({}).value == 2**31 - 1
    assert compile_expression("+2147483647").evaluate({}).value == 2**31 - 1
    assert compile_expression("- 2147483648").evaluate({}).value == -(2**31)
    assert compile_expression("0000000000000000000000000042").evaluate({}).value == 42
