"""CESQL syntax tree produced by the parser and consumed (once) by the compiler.

Left-associative operator runs at one precedence level are a single ``Chain``
node (``a AND b OR c`` -> ``Chain(LOGIC, [a, b, c], [AND, OR])``): evaluation
then loops instead of recursing, so a 30 000-term ``1 + 1 + ...`` cannot
exhaust the Python stack, and AND/OR chains short-circuit in one frame.

Every node records ``pos`` (offset of its first character, for error messages)
and ``depth`` (height of its subtree, checked against ``limits.MAX_DEPTH``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from triggers.cesql.values import Value

__all__ = [
    "Call",
    "Chain",
    "DataPath",
    "Exists",
    "Identifier",
    "In",
    "Level",
    "Like",
    "Literal",
    "Node",
    "Unary",
]


class Level(IntEnum):
    """Binary precedence levels, lowest first (spec section 3.6)."""

    LOGIC = 0  # AND OR XOR (one level, left to right)
    COMPARISON = 1  # = != <> < <= > >=
    ADDITIVE = 2  # + -
    MULTIPLICATIVE = 3  # * / %


BINARY_OPERATORS: dict[str, Level] = {
    "AND": Level.LOGIC,
    "OR": Level.LOGIC,
    "XOR": Level.LOGIC,
    "=": Level.COMPARISON,
    "!=": Level.COMPARISON,
    "<>": Level.COMPARISON,
    "<": Level.COMPARISON,
    "<=": Level.COMPARISON,
    ">": Level.COMPARISON,
    ">=": Level.COMPARISON,
    "+": Level.ADDITIVE,
    "-": Level.ADDITIVE,
    "*": Level.MULTIPLICATIVE,
    "/": Level.MULTIPLICATIVE,
    "%": Level.MULTIPLICATIVE,
}


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value
    pos: int
    depth: int = 1


@dataclass(frozen=True, slots=True)
class Identifier:
    name: str  # lower-cased attribute name
    pos: int
    depth: int = 1


@dataclass(frozen=True, slots=True)
class DataPath:
    """``data.a.b``: a value in the event's JSON data (our extension)."""

    path: str  # as written, ``data.`` included
    pos: int
    depth: int = 1

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split(".")[1:])


@dataclass(frozen=True, slots=True)
class Exists:
    name: str
    pos: int
    depth: int = 1


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "NOT" or "-"
    operand: Node
    pos: int
    depth: int


@dataclass(frozen=True, slots=True)
class Chain:
    level: Level
    operands: tuple[Node, ...]  # at least two
    ops: tuple[str, ...]  # len(operands) - 1 operators, upper-cased
    pos: int
    depth: int


@dataclass(frozen=True, slots=True)
class Like:
    operand: Node
    pattern: str
    negated: bool
    pos: int
    depth: int


@dataclass(frozen=True, slots=True)
class In:
    operand: Node
    elements: tuple[Node, ...]  # at least one
    negated: bool
    pos: int
    depth: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # upper-cased function name
    args: tuple[Node, ...]
    pos: int
    depth: int


Node = Literal | Identifier | DataPath | Exists | Unary | Chain | Like | In | Call
