"""Resource limits that keep compilation and evaluation bounded on hostile input.

Trigger filters are written by tenants and events are sent by anyone who can
reach the broker, so neither side may be able to exhaust the dispatcher:

* ``MAX_EXPRESSION_LENGTH`` bounds everything proportional to the source: token
  count, literal sizes, ``IN`` list length, number of function arguments.
* ``MAX_DEPTH`` bounds nesting.  Both the recursive-descent parser and the
  compiled closures recurse once per level, so this keeps them far below
  Python's default recursion limit (1000 frames): at most about 7 parser frames
  and 1-2 evaluation frames per level (measured worst case: about 450 frames).
  Flat operator chains (``a AND b AND c ...``, ``1 + 1 + ...``) are parsed
  into one n-ary node, so they do not count.
* ``MAX_STRING_LENGTH`` bounds strings that functions build or receive
  (``CONCAT`` of the same attribute 30 000 times would otherwise allocate
  gigabytes).  Attribute values themselves are the caller's input and are not
  copied; operators other than function calls never grow strings.
"""

from __future__ import annotations

__all__ = ["MAX_DEPTH", "MAX_EXPRESSION_LENGTH", "MAX_STRING_LENGTH"]

MAX_EXPRESSION_LENGTH = 64 * 1024
"""Longest accepted expression, in characters."""

MAX_DEPTH = 64
"""Deepest accepted nesting: parentheses, function calls, IN lists, unary and postfix
operators, and the levels of the resulting expression tree."""

MAX_STRING_LENGTH = 256 * 1024
"""Longest string a function may receive (all string arguments together) or return."""
