"""User-defined functions: sdk-go's UDF TCK plus the registry's overload rules."""

from __future__ import annotations

import pytest

from triggers.cesql import (
    CesqlError,
    ErrorKind,
    FunctionRegistry,
    Result,
    compile_expression,
    explain,
)

from .tck import UDF_FILE, TckCase, load_file

UDF_CASES = load_file(UDF_FILE)
EVENT = {"specversion": "1.0", "id": "1", "type": "mock.test", "source": "/s"}


def _konkat(*parts: str) -> str:
    return "".join(parts)


def tck_registry() -> FunctionRegistry:
    registry = FunctionRegistry()
    registry.register("HASPREFIX", [str, str], bool, lambda text, prefix: text.startswith(prefix))
    registry.register("KONKAT", [str], str, _konkat, variadic=True)
    return registry


def test_udf_tck_is_loaded() -> None:
    assert len(UDF_CASES) == 8


@pytest.mark.parametrize("case", UDF_CASES, ids=lambda case: case.id)
def test_udf_tck_case(case: TckCase) -> None:
    result = compile_expression(case.expression, tck_registry()).evaluate(case.attributes())
    assert result.error is None
    assert type(result.value) is type(case.result)
    assert result.value == case.result


def test_udf_cases_need_the_registration() -> None:
    result = compile_expression("HASPREFIX('abc', 'a')").evaluate(EVENT)
    assert result == Result(False, result.error)
    assert result.error is not None
    assert result.error.kind is ErrorKind.MISSING_FUNCTION


def test_names_are_case_insensitive() -> None:
    registry = FunctionRegistry()
    registry.register("has_Prefix", [str, str], bool, lambda text, prefix: text.startswith(prefix))
    assert compile_expression("HAS_PREFIX(type, 'mock')", registry).matches(EVENT) == (True, None)
    assert compile_expression("has_prefix(type, 'x')", registry).matches(EVENT) == (False, None)


def test_arguments_are_cast_to_the_declared_types() -> None:
    seen: list[object] = []

    def record(*args: object) -> bool:
        seen.extend(args)
        return True

    registry = FunctionRegistry()
    registry.register("REC", [str, int, bool, object], bool, record)
    result = compile_expression("REC(12, '34', 'TRUE', 5)", registry).evaluate(EVENT)
    assert result == Result(True, None)
    assert seen == ["12", 34, True, 5]
    assert [type(arg) for arg in seen] == [str, int, bool, int]


def test_failed_argument_cast_reports_cast_and_still_calls() -> None:
    registry = FunctionRegistry()
    registry.register("TWICE", [int], int, lambda number: number * 2)
    result = compile_expression("TWICE('abc')", registry).evaluate(EVENT)
    assert result.value == 0
    assert result.error is not None
    assert result.error.kind is ErrorKind.CAST


def test_missing_attribute_argument_gives_zero_of_return_type() -> None:
    calls: list[object] = []
    registry = FunctionRegistry()

    def echo(text: str) -> str:
        calls.append(text)
        return text

    registry.register("ECHO", [str], str, echo)
    result = compile_expression("ECHO(nothere)", registry).evaluate(EVENT)
    assert result.value == ""
    assert result.error is not None
    assert result.error.kind is ErrorKind.MISSING_ATTRIBUTE
    assert calls == []


def test_raising_function_gives_zero_and_function_evaluation_error() -> None:
    def boom(text: str) -> int:
        raise RuntimeError("kaput")

    registry = FunctionRegistry()
    registry.register("BOOM", [str], int, boom)
    result = compile_expression("BOOM(id) + 1", registry).evaluate(EVENT)
    assert result.value == 1  # BOOM(id) is 0, the addition still happens
    assert result.error is not None
    assert result.error.kind is ErrorKind.FUNCTION_EVALUATION
    assert "kaput" in result.error.message


@pytest.mark.parametrize(
    ("returns", "returned"),
    [(int, "1"), (int, True), (int, 2**31), (str, None), (bool, 1), (str, 3.5)],
)
def test_wrong_return_type_gives_zero_and_function_evaluation_error(
    returns: type, returned: object
) -> None:
    registry = FunctionRegistry()
    registry.register("BAD", [], returns, lambda: returned)
    result = compile_expression("BAD()", registry).evaluate(EVENT)
    assert result.value == {int: 0, str: "", bool: False}[returns]
    assert type(result.value) is returns
    assert result.error is not None
    assert result.error.kind is ErrorKind.FUNCTION_EVALUATION


def test_function_can_return_value_and_error() -> None:
    def clamp(number: int) -> Result:
        if number > 10:
            return Result(10, CesqlError(ErrorKind.MATH, "clamped"))
        return Result(number, None)

    registry = FunctionRegistry()
    registry.register("CLAMP", [int], int, clamp)
    assert compile_expression("CLAMP(3)", registry).evaluate(EVENT) == Result(3, None)
    assert compile_expression("CLAMP(30)", registry).evaluate(EVENT) == Result(
        10, CesqlError(ErrorKind.MATH, "clamped")
    )


def test_overload_by_arity_and_builtin_overloads() -> None:
    registry = FunctionRegistry()
    registry.register("PICK", [str], str, lambda a: a)
    registry.register("PICK", [str, str], str, lambda a, b: b)
    registry.register("LENGTH", [str, str], int, lambda a, b: len(a) + len(b))
    assert compile_expression("PICK('a')", registry).evaluate(EVENT).value == "a"
    assert compile_expression("PICK('a', 'b')", registry).evaluate(EVENT).value == "b"
    assert compile_expression("LENGTH('ab', 'c')", registry).evaluate(EVENT).value == 3
    assert compile_expression("LENGTH('ab')", registry).evaluate(EVENT).value == 2


def test_variadic_with_fixed_prefix() -> None:
    registry = FunctionRegistry()
    registry.register("JOIN", [str, str], str, lambda sep, *parts: sep.join(parts), variadic=True)
    assert compile_expression("JOIN('-', 'a', 'b', 1)", registry).evaluate(EVENT).value == "a-b-1"
    assert compile_expression("JOIN('-')", registry).evaluate(EVENT).value == ""
    missing = compile_expression("JOIN()", registry).evaluate(EVENT)
    assert missing.error is not None
    assert missing.error.kind is ErrorKind.MISSING_FUNCTION


def test_registration_after_compile_does_not_change_compiled_expressions() -> None:
    registry = FunctionRegistry()
    expression = compile_expression("LATER()", registry)
    registry.register("LATER", [], bool, lambda: True)
    assert expression.matches(EVENT) == (False, ErrorKind.MISSING_FUNCTION)
    assert compile_expression("LATER()", registry).matches(EVENT) == (True, None)


def test_registries_are_independent() -> None:
    first = FunctionRegistry()
    first.register("ONLY_HERE", [], bool, lambda: True)
    assert explain("ONLY_HERE()", EVENT, first) == {"value": True, "error": None}
    assert explain("ONLY_HERE()", EVENT)["error"]["kind"] == "missingFunction"
    assert explain("ONLY_HERE()", EVENT, FunctionRegistry())["error"]["kind"] == "missingFunction"


@pytest.mark.parametrize(
    ("name", "params", "returns", "variadic"),
    [
        ("LENGTH", [str], int, False),  # clashes with the built-in LENGTH(String)
        ("CONCAT", [str], str, True),  # CONCAT is already variadic
        ("CONCAT_WS", [str, str], str, False),  # would also match CONCAT_WS(String, String...)
        ("ABS", [int], int, True),  # variadic with 0 fixed <= arity 1 of ABS(Integer)
        ("NOT", [bool], bool, False),  # keyword
        ("in", [str], bool, False),  # keyword, any case
        ("HAS1", [str], bool, False),  # digits are not allowed in function names
        ("_X", [str], bool, False),  # must start with a letter
        ("", [], bool, False),
        ("F", [float], bool, False),  # not a CESQL type
        ("F", [str], float, False),
        ("F", [], bool, True),  # variadic needs a tail type
    ],
)
def test_invalid_registrations_are_rejected(
    name: str, params: list[type], returns: type, variadic: bool
) -> None:
    registry = FunctionRegistry()
    with pytest.raises(ValueError):
        registry.register(name, params, returns, lambda *args: None, variadic=variadic)


def test_variadic_rules_in_both_orders() -> None:
    registry = FunctionRegistry()
    registry.register("ABC", [str], int, lambda a: 1)
    registry.register("ABC", [str, str], int, lambda a, b: 2)
    # Spec 3.5's example: ABC(x, y, z, ...) - three fixed parameters, then a String tail.
    registry.register("ABC", [str, str, str, str], int, lambda *a: len(a), variadic=True)
    with pytest.raises(ValueError):
        registry.register("ABC", [str, str, str], int, lambda *a: 3)
    with pytest.raises(ValueError):
        registry.register("ABC", [str, str], int, lambda *a: 0, variadic=True)
    assert compile_expression("ABC('a','b','c','d','e')", registry).evaluate(EVENT).value == 5
    assert compile_expression("ABC('a','b','c')", registry).evaluate(EVENT).value == 3
    assert compile_expression("ABC('a','b')", registry).evaluate(EVENT).value == 2

    other = FunctionRegistry()
    other.register("XYZ", [str, str], int, lambda *a: len(a), variadic=True)
    with pytest.raises(ValueError):  # XYZ(x) would be the variadic with an empty tail
        other.register("XYZ", [str], int, lambda a: 1)


def test_not_callable_is_rejected() -> None:
    with pytest.raises(ValueError):
        FunctionRegistry().register("F", [], bool, "not a function")  # type: ignore[arg-type]
