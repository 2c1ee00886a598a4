"""Function table: built-ins plus user-defined functions registered from Python.

Dispatch follows spec v1.0 section 3.5: a name (case-insensitive) may have
several overloads distinguished by arity only; at most one of them may be
variadic, and only if its number of fixed parameters is greater than the arity
of every fixed overload (otherwise a call could match two of them).  Calls are
resolved when an expression is compiled, so registering more functions later
does not change already compiled expressions.

User functions are plain Python callables.  Arguments are cast to the declared
parameter types first (``str``, ``int``, ``bool``, or ``object`` for "any value,
no cast").  The callable returns a value of the declared type, or a
:class:`~triggers.cesql.values.Result` to return a value *and* an error.  If it
raises, or returns something that is not a CESQL value of the declared type, the
call yields the zero value of the return type and a ``functionEvaluation`` error
(spec section 3.5.3); evaluation itself never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from triggers.cesql.errors import CesqlError, ErrorKind
from triggers.cesql.lexer import KEYWORDS
from triggers.cesql.values import INT32_MAX, INT32_MIN, Errors, Result, Value, type_name, zero_value

__all__ = ["Function", "FunctionRegistry", "Implementation"]

Implementation = Callable[..., Value]
"""Internal calling convention: ``impl(errors, *args) -> value`` (args already cast)."""

_NAME = re.compile(r"[A-Za-z][A-Za-z_]*")
_PARAM_TYPES = (str, int, bool, object)
_RETURN_TYPES = (str, int, bool)


@dataclass(frozen=True, slots=True)
class Function:
    """One overload: fixed parameter types, optional variadic tail type, return type."""

    name: str
    params: tuple[type, ...]
    variadic: type | None
    returns: type
    impl: Implementation

    @property
    def arity(self) -> int:
        return len(self.params)

    def param_type(self, index: int) -> type:
        return self.params[index] if index < len(self.params) else self.variadic or object

    def signature(self) -> str:
        names = [type_name(param) for param in self.params]
        if self.variadic is not None:
            names.append(type_name(self.variadic) + "...")
        return f"{self.name}({', '.join(names)}) -> {type_name(self.returns)}"


class FunctionRegistry:
    """Functions available to expressions: the built-ins plus what you register."""

    def __init__(self) -> None:
        self._fixed: dict[str, dict[int, Function]] = {}
        self._variadic: dict[str, Function] = {}
        from triggers.cesql.builtins import BUILTINS  # builtins use this module's types

        for function in BUILTINS:
            self._add(function)

    def register(
        self,
        name: str,
        params: Sequence[type],
        returns: type,
        fn: Callable[..., object],
        variadic: bool = False,
    ) -> None:
        """Register ``fn`` as CESQL function ``name``.

        ``params`` are the parameter types; with ``variadic=True`` the last one is
        the type of a tail repeated zero or more times (``KONKAT``: ``[str]``).
        Raises ``ValueError`` for an invalid name or type, or an overload that
        clashes with an existing one.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"invalid function name {name!r}: letters and '_', starting a letter")
        upper = name.upper()
        if upper in KEYWORDS:
            raise ValueError(f"{upper} is a CESQL keyword and cannot name a function")
        types = tuple(params)
        for param in types:
            if param not in _PARAM_TYPES:
                raise ValueError(
                    f"{upper}: parameter type {param!r} is not str, int, bool or object"
                )
        if returns not in _RETURN_TYPES:
            raise ValueError(f"{upper}: return type {returns!r} is not str, int or bool")
        if not callable(fn):
            raise ValueError(f"{upper}: {fn!r} is not callable")
        tail: type | None = None
        if variadic:
            if not types:
                raise ValueError(f"{upper}: a variadic function needs the type of its tail")
            tail, types = types[-1], types[:-1]
        self._add(Function(upper, types, tail, returns, _user_function(upper, returns, fn)))

    def resolve(self, name: str, arity: int) -> Function | None:
        """The overload of ``name`` for ``arity`` arguments, if any."""
        upper = name.upper()
        fixed = self._fixed.get(upper)
        if fixed is not None and arity in fixed:
            return fixed[arity]
        variadic = self._variadic.get(upper)
        if variadic is not None and arity >= variadic.arity:
            return variadic
        return None

    def overloads(self, name: str) -> list[Function]:
        """All overloads of ``name``, fixed arities first."""
        upper = name.upper()
        found = sorted(self._fixed.get(upper, {}).values(), key=lambda f: f.arity)
        if upper in self._variadic:
            found.append(self._variadic[upper])
        return found

    def _add(self, function: Function) -> None:
        name = function.name
        fixed = self._fixed.setdefault(name, {})
        variadic = self._variadic.get(name)
        if function.variadic is not None:
            if variadic is not None:
                raise ValueError(f"{name} already has a variadic overload: {variadic.signature()}")
            if fixed and max(fixed) >= function.arity:
                raise ValueError(
                    f"{name}: a variadic overload needs more fixed parameters ({function.arity}) "
                    f"than the arity of every other overload (up to {max(fixed)})"
                )
            self._variadic[name] = function
            return
        if function.arity in fixed:
            raise ValueError(f"{name} already has an overload of arity {function.arity}")
        if variadic is not None and function.arity >= variadic.arity:
            raise ValueError(
                f"{name}: arity {function.arity} would also match the variadic overload "
                f"{variadic.signature()}"
            )
        fixed[function.arity] = function


def _user_function(name: str, returns: type, fn: Callable[..., object]) -> Implementation:
    """Wrap a user callable into the internal convention, enforcing spec 3.5.3."""
    zero = zero_value(returns)
    expected = type_name(returns)

    def failed(errors: Errors, why: str) -> Value:
        errors.append(CesqlError(ErrorKind.FUNCTION_EVALUATION, f"{name}: {why}"))
        return zero

    def call(errors: Errors, *args: Value) -> Value:
        try:
            outcome = fn(*args)
        except Exception as exc:  # a user function failing is an evaluation error
            return failed(errors, f"raised {type(exc).__name__}: {exc}")
        value: object = outcome
        error: object = None
        if isinstance(outcome, Result):
            value, error = outcome.value, outcome.error
        if type(value) is not returns:
            return failed(errors, f"returned {type(value).__name__}, expected {expected}")
        if type(value) is int and not INT32_MIN <= value <= INT32_MAX:
            return failed(errors, f"returned {value}, outside the 32-bit Integer range")
        if error is not None:
            if not isinstance(error, CesqlError):
                return failed(errors, f"returned an error that is not a CesqlError: {error!r}")
            errors.append(error)
        return value  # type: ignore[return-value]

    return call
