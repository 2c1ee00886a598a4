"""CESQL error kinds and the two error types the engine exposes.

CESQL is *total*: evaluation always yields a value, and errors travel beside it
(spec v1.0 section 3.3).  So :class:`CesqlError` is mostly a value carried in a
:class:`~triggers.cesql.values.Result`; it is an ``Exception`` subclass only so
that :class:`CesqlParseError` (the one error raised, at compile time) shares the
same ``kind``/``message`` shape and callers can catch both uniformly.

Parse errors carry the character offset into the expression; :meth:`render`
prints the offending line with a caret under that offset, which is what the
trigger loader shows to whoever wrote the filter.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Any

__all__ = ["CesqlError", "CesqlParseError", "ErrorKind"]

# How many characters of a long line are shown on each side of the caret.
_RENDER_WINDOW = 60


class ErrorKind(StrEnum):
    """The error kinds of the CESQL v1.0 spec, spelled as in the TCK."""

    PARSE = "parse"
    MATH = "math"
    CAST = "cast"
    MISSING_ATTRIBUTE = "missingAttribute"
    MISSING_FUNCTION = "missingFunction"
    FUNCTION_EVALUATION = "functionEvaluation"
    GENERIC = "generic"


class CesqlError(Exception):
    """An error of a given kind, with a human-readable message."""

    kind: ErrorKind
    message: str

    def __init__(self, kind: ErrorKind, message: str) -> None:
        # BaseException.__new__ already stored (kind, message) in self.args.
        self.kind = kind if kind.__class__ is ErrorKind else ErrorKind(kind)
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"

    def __repr__(self) -> str:
        return f"CesqlError({self.kind.value!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.args == other.args)

    def __hash__(self) -> int:
        return hash((type(self), self.args))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by :func:`~triggers.cesql.explain`."""
        return {"kind": self.kind.value, "message": self.message}


class CesqlParseError(CesqlError):
    """The expression is not valid CESQL (raised by ``compile_expression``).

    ``position`` is a 0-based character offset into ``expression``.
    """

    position: int
    expression: str

    def __init__(self, message: str, position: int, expression: str) -> None:
        position = max(0, min(position, len(expression)))
        super().__init__(ErrorKind.PARSE, message)
        self.args = (message, position, expression)
        self.position = position
        self.expression = expression

    def __str__(self) -> str:
        return f"{self.message} (at position {self.position})"

    def __repr__(self) -> str:
        return (
            f"CesqlParseError({self.message!r}, {self.position!r}, <{len(self.expression)} chars>)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "position": self.position}

    def line_and_column(self) -> tuple[int, int]:
        """1-based line and column of :attr:`position` (lines split on ``\\n``)."""
        before = self.expression[: self.position]
        line = before.count("\n") + 1
        column = self.position - (before.rfind("\n") + 1) + 1
        return line, column

    def render(self) -> str:
        """Message, the offending expression line, and a caret under the position."""
        text = self.expression
        start = text.rfind("\n", 0, self.position) + 1
        end = text.find("\n", self.position)
        if end < 0:
            end = len(text)
        line_text = text[start:end]
        column = self.position - start
        prefix = ""
        if column > _RENDER_WINDOW:
            cut = column - _RENDER_WINDOW
            line_text = line_text[cut:]
            column -= cut
            prefix = "..."
        suffix = "..." if len(line_text) > column + _RENDER_WINDOW else ""
        line_text = line_text[: column + _RENDER_WINDOW]
        shown = prefix + "".join(_printable(ch) for ch in line_text) + suffix
        pad = len(prefix) + sum(_width(ch) for ch in line_text[:column])
        where = f"position {self.position}"
        if "\n" in text:
            line, col = self.line_and_column()
            where += f", line {line}, column {col}"
        return f"CESQL parse error at {where}: {self.message}\n  {shown}\n  {' ' * pad}^"


def _printable(ch: str) -> str:
    """Control characters are shown as a space so the caret stays aligned."""
    return " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch


def _width(ch: str) -> int:
    """Terminal columns taken by ``ch`` as displayed by :func:`_printable`."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
