"""CESQL tokenizer.

Hand-written (with one small regex for the simple tokens) so that every token
keeps its exact character offset, which parse errors report, and so string
literals are scanned with ``str.find`` rather than a backtracking regex.

Lexical rules, from the spec's EBNF (section 2) and the ANTLR lexer that ships
with it, where the two agree:

* Whitespace is space, tab, CR and LF only.
* A *word* is a run of ``[A-Za-z0-9_]``.  All digits: an integer literal
  (the sign is handled by the parser, which knows whether ``-`` is binary).
  Otherwise the parser decides: keyword (case-insensitive), function name
  (``[A-Za-z][A-Za-z_]*`` followed by ``(``) or attribute name
  (``[A-Za-z0-9]+``).
* String literals are ``'...'`` or ``"..."``.  A backslash always pairs with the
  next character; ``\\'`` (in ``'...'``) and ``\\"`` (in ``"..."``) stand for the
  quote, every other pair is kept verbatim (``'ab\\c'`` is ``ab\\c``), so LIKE
  patterns still see their ``\\%`` and ``\\_`` escapes.  A doubled quote is NOT an
  escape (the spec's EBNF has no such form), it ends the literal.
* Operators: ``( ) , + - * / % = != <> < <= > >=``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from triggers.cesql.errors import CesqlParseError

__all__ = ["KEYWORDS", "Token", "tokenize"]

KEYWORDS = frozenset({"AND", "OR", "XOR", "NOT", "LIKE", "EXISTS", "IN", "TRUE", "FALSE"})

# Token kinds.
WORD = "word"
INT = "int"
STR = "string"
OP = "op"
EOF = "end"
PATH = "path"
"""``data.a.b``: a path into the event's JSON data (our extension, see payload.py)."""

_SIMPLE = re.compile(
    r"(?P<ws>[ \t\r\n]+)"
    r"|(?P<path>data(?:\.[A-Za-z0-9_]+)+)"
    r"|(?P<word>[A-Za-z0-9_]+)"
    r"|(?P<op>!=|<>|<=|>=|[()=<>,+\-*/%])"
)


class Token(NamedTuple):
    kind: str
    text: str  # source text (for strings: the decoded value)
    pos: int  # offset of the first character
    end: int  # offset just past the last character

    def describe(self) -> str:
        if self.kind == EOF:
            return "end of expression"
        if self.kind == STR:
            return "string literal"
        if self.kind == INT:
            return f"integer literal {self.text}"
        if self.kind == WORD and self.text.upper() in KEYWORDS:
            return f"keyword {self.text.upper()}"
        if self.kind == WORD:
            return f"name {self.text!r}"
        if self.kind == PATH:
            return f"data path {self.text!r}"
        return f"{self.text!r}"


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``end`` token."""
    tokens: list[Token] = []
    pos = 0
    length = len(source)
    while pos < length:
        char = source[pos]
        if char in "'\"":
            token = _string(source, pos)
            tokens.append(token)
            pos = token.end
            continue
        match = _SIMPLE.match(source, pos)
        if match is None:
            if char == "!":
                raise CesqlParseError("'!' must be followed by '=' (use != or NOT)", pos, source)
            raise CesqlParseError(f"unexpected character {char!r}", pos, source)
        kind = match.lastgroup
        end = match.end()
        if kind == "word":
            text = match.group()
            tokens.append(Token(INT if text.isdigit() else WORD, text, pos, end))
        elif kind == "op":
            tokens.append(Token(OP, match.group(), pos, end))
        elif kind == "path":
            tokens.append(Token(PATH, match.group(), pos, end))
        pos = end
    tokens.append(Token(EOF, "", length, length))
    return tokens


def _string(source: str, start: int) -> Token:
    quote = source[start]
    parts: list[str] = []
    pos = start + 1
    close = source.find(quote, pos)
    # Each search starts where the previous one stopped: linear in the literal's length.
    while True:
        if close < 0:
            raise CesqlParseError("unterminated string literal", start, source)
        backslash = source.find("\\", pos, close)
        if backslash < 0:
            parts.append(source[pos:close])
            return Token(STR, "".join(parts), start, close + 1)
        parts.append(source[pos:backslash])
        escaped = source[backslash + 1]  # exists: a quote follows somewhere
        parts.append(escaped if escaped == quote else "\\" + escaped)
        pos = backslash + 2
        if pos > close:
            close = source.find(quote, pos)
