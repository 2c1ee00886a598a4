"""Recursive-descent (precedence-climbing) parser for the whole CESQL v1.0 grammar.

Why hand-written rather than a grammar library (lark is not installed, ANTLR
is what the SDKs generate from): no dependency; exact character positions in
every error; resource limits enforced *while* parsing, before hostile input can
recurse; and the grammar is small enough (about ten productions) that a
precedence-climbing parser is shorter than a grammar file plus tree transformer.

Precedence, highest first (spec section 3.6; all binary levels are
left-associative, "evaluated left to right when the precedence is equal"):

1. primaries: literals, attribute names, function calls, ``EXISTS name``, ``( ... )``
2. prefix ``NOT`` and ``-`` (``NOT a = b`` is ``(NOT a) = b``, as in the SDKs)
3. postfix ``[NOT] LIKE 'pattern'`` and ``[NOT] IN (set)``, applied left to right
4. ``* / %``   5. ``+ -``   6. ``= != <> < <= > >=``   7. ``AND OR XOR``

Note on 7: AND, OR and XOR share one level and associate to the left, as the
spec's prose says (``a AND b OR c`` is ``(a AND b) OR c``).  The ANTLR grammar
used by sdk-go/sdk-java declares that level right-associative; write explicit
parentheses when mixing them in filters meant for both engines.

An integer literal may carry a sign (``-2147483648`` is a literal, so it is in
range); ``-`` before any other operand is the negation operator.  There is no
unary ``+``; ``+5`` is accepted only as a literal with the sign attached.
"""

from __future__ import annotations

import re

from triggers.cesql import lexer
from triggers.cesql.errors import CesqlParseError
from triggers.cesql.lexer import KEYWORDS, Token
from triggers.cesql.limits import MAX_DEPTH, MAX_EXPRESSION_LENGTH
from triggers.cesql.nodes import (
    BINARY_OPERATORS,
    Call,
    Chain,
    DataPath,
    Exists,
    Identifier,
    In,
    Level,
    Like,
    Literal,
    Node,
    Unary,
)
from triggers.cesql.payload import MAX_SEGMENTS
from triggers.cesql.values import INT32_MAX, INT32_MIN

__all__ = ["parse"]

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9]+")
_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z_]*")
_WHITESPACE = " \t\r\n"


def parse(source: str) -> Node:
    """Parse a CESQL expression into a syntax tree; raises :class:`CesqlParseError`."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise CesqlParseError(
            f"expression is too long ({len(source)} characters, limit {MAX_EXPRESSION_LENGTH})",
            MAX_EXPRESSION_LENGTH,
            source,
        )
    if not source.strip(_WHITESPACE):
        raise CesqlParseError("empty expression", 0, source)
    return _Parser(source).parse()


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = lexer.tokenize(source)
        self.index = 0
        self.nesting = 0

    # -- token helpers -------------------------------------------------------

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def peek(self) -> Token:
        return self.tokens[min(self.index + 1, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != lexer.EOF:
            self.index += 1
        return token

    def error(self, message: str, pos: int) -> CesqlParseError:
        return CesqlParseError(message, pos, self.source)

    def unexpected(self, token: Token, expected: str) -> CesqlParseError:
        return self.error(f"unexpected {token.describe()}, expected {expected}", token.pos)

    def keyword(self, token: Token) -> str | None:
        if token.kind == lexer.WORD:
            upper = token.text.upper()
            if upper in KEYWORDS:
                return upper
        return None

    def enter(self, token: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(
                f"expression is nested too deeply (limit {MAX_DEPTH} levels)", token.pos
            )

    def checked(self, node: Node) -> Node:
        if node.depth > MAX_DEPTH:
            raise self.error(
                f"expression is nested too deeply (limit {MAX_DEPTH} levels)", node.pos
            )
        return node

    def expect_close(self, opening: Token) -> None:
        token = self.current
        if token.kind == lexer.OP and token.text == ")":
            self.advance()
            return
        raise self.unexpected(token, f"')' to close '(' at position {opening.pos}")

    # -- grammar -------------------------------------------------------------

    def parse(self) -> Node:
        node = self.binary(Level.LOGIC)
        token = self.current
        if token.kind != lexer.EOF:
            raise self.unexpected(token, "an operator or the end of the expression")
        return node

    def binary_level(self, token: Token) -> Level | None:
        if token.kind == lexer.OP:
            return BINARY_OPERATORS.get(token.text)
        keyword = self.keyword(token)
        return BINARY_OPERATORS.get(keyword) if keyword else None

    def binary(self, min_level: int) -> Node:
        left = self.postfix()
        while True:
            level = self.binary_level(self.current)
            if level is None or level < min_level:
                return left
            operands = [left]
            ops: list[str] = []
            while self.binary_level(self.current) == level:
                ops.append(self.advance().text.upper())
                if level == Level.MULTIPLICATIVE:
                    operands.append(self.postfix())
                else:
                    operands.append(self.binary(level + 1))
            depth = 1 + max(operand.depth for operand in operands)
            left = self.checked(Chain(level, tuple(operands), tuple(ops), left.pos, depth))

    def postfix(self) -> Node:
        node = self.prefix()
        while True:
            token = self.current
            keyword = self.keyword(token)
            negated = keyword == "NOT"
            if negated:
                keyword = self.keyword(self.peek())
                if keyword not in ("LIKE", "IN"):
                    raise self.unexpected(self.peek(), "LIKE or IN after NOT")
                self.advance()
            if keyword == "LIKE":
                self.advance()
                pattern = self.advance()
                if pattern.kind != lexer.STR:
                    raise self.error(
                        f"the LIKE pattern must be a string literal, not {pattern.describe()}",
                        pattern.pos,
                    )
                node = self.checked(Like(node, pattern.text, negated, node.pos, node.depth + 1))
            elif keyword == "IN":
                self.advance()
                elements = self.set_elements()
                depth = 1 + max(node.depth, *(element.depth for element in elements))
                node = self.checked(In(node, elements, negated, node.pos, depth))
            else:
                return node

    def set_elements(self) -> tuple[Node, ...]:
        opening = self.advance()
        if opening.kind != lexer.OP or opening.text != "(":
            raise self.unexpected(opening, "'(' to start the IN set")
        if self.current.kind == lexer.OP and self.current.text == ")":
            raise self.error("an IN set needs at least one element", self.current.pos)
        self.enter(opening)
        elements = [self.binary(Level.LOGIC)]
        while self.current.kind == lexer.OP and self.current.text == ",":
            self.advance()
            elements.append(self.binary(Level.LOGIC))
        self.expect_close(opening)
        self.nesting -= 1
        return tuple(elements)

    def prefix(self) -> Node:
        token = self.current
        if self.keyword(token) == "NOT" or (token.kind == lexer.OP and token.text == "-"):
            self.advance()
            following = self.current
            if token.text == "-" and following.kind == lexer.INT:
                self.advance()
                return self.integer(token.pos, following, negative=True)
            self.enter(token)
            operand = self.prefix()
            self.nesting -= 1
            op = "NOT" if token.text != "-" else "-"
            return self.checked(Unary(op, operand, token.pos, operand.depth + 1))
        if token.kind == lexer.OP and token.text == "+":
            following = self.peek()
            if following.kind == lexer.INT and following.pos == token.end:
                self.advance()
                self.advance()
                return self.integer(token.pos, following, negative=False)
            raise self.error("unexpected '+': CESQL has no unary plus", token.pos)
        return self.primary()

    def integer(self, pos: int, digits: Token, *, negative: bool) -> Literal:
        significant = digits.text.lstrip("0")
        value = int(significant or "0") if len(significant) <= 10 else INT32_MAX + 2
        if negative:
            value = -value
        if not INT32_MIN <= value <= INT32_MAX:
            raise self.error(
                f"integer literal out of the 32-bit range [{INT32_MIN}, {INT32_MAX}]", pos
            )
        return Literal(value, pos)

    def primary(self) -> Node:
        # One frame per nesting level matters (see limits.py): word, function
        # call and parenthesis handling are deliberately inlined here.
        token = self.advance()
        kind = token.kind
        if kind == lexer.INT:
            return self.integer(token.pos, token, negative=False)
        if kind == lexer.STR:
            return Literal(token.text, token.pos)
        if kind == lexer.OP and token.text == "(":
            self.enter(token)
            node = self.binary(Level.LOGIC)
            self.expect_close(token)
            self.nesting -= 1
            return node
        if kind == lexer.PATH:
            return DataPath(self.data_path(token), token.pos)
        if kind != lexer.WORD:
            raise self.unexpected(token, "a value, an attribute name, a function call or '('")
        keyword = self.keyword(token)
        if keyword in ("TRUE", "FALSE"):
            return Literal(keyword == "TRUE", token.pos)
        if keyword == "EXISTS":
            name = self.advance()
            if name.kind == lexer.PATH:
                return Exists(self.data_path(name), token.pos)
            if name.kind not in (lexer.WORD, lexer.INT) or self.keyword(name):
                raise self.unexpected(name, "an attribute name after EXISTS")
            return Exists(self.attribute_name(name), token.pos)
        if keyword is not None:
            raise self.unexpected(token, "a value, an attribute name, a function call or '('")
        opening = self.current
        if not (opening.kind == lexer.OP and opening.text == "("):
            return Identifier(self.attribute_name(token), token.pos)
        # function call
        if not _FUNCTION_NAME.fullmatch(token.text):
            raise self.error(
                f"{token.text!r} is not a valid function name "
                "(letters and '_', starting with a letter)",
                token.pos,
            )
        self.advance()
        self.enter(opening)
        args: list[Node] = []
        if not (self.current.kind == lexer.OP and self.current.text == ")"):
            args.append(self.binary(Level.LOGIC))
            while self.current.kind == lexer.OP and self.current.text == ",":
                self.advance()
                args.append(self.binary(Level.LOGIC))
        self.expect_close(opening)
        self.nesting -= 1
        depth = 1 + max((arg.depth for arg in args), default=0)
        return self.checked(Call(token.text.upper(), tuple(args), token.pos, depth))

    def data_path(self, token: Token) -> str:
        """``data.a.b`` (our extension): at most MAX_SEGMENTS segments after ``data``."""
        if token.text.count(".") > MAX_SEGMENTS:
            raise self.error(
                f"a data path has at most {MAX_SEGMENTS} segments after 'data'", token.pos
            )
        return token.text

    def attribute_name(self, token: Token) -> str:
        if not _ATTRIBUTE_NAME.fullmatch(token.text):
            raise self.error(
                f"{token.text!r} is not a valid attribute name (letters and digits only)",
                token.pos,
            )
        return token.text.lower()
