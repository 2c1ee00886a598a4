"""LIKE patterns compiled to a linear-time matcher (no backtracking regex).

Pattern syntax (spec v1.0 section 3.4.3): ``%`` matches any run of characters,
``_`` exactly one character, ``\\%`` and ``\\_`` match ``%`` and ``_``; a
backslash before anything else is an ordinary character (so ``'ab\\c'`` matches
``ab\\c``, as in sdk-go and sdk-java).  Matching is case-sensitive and counts
Unicode code points.

Why not ``re``: translating ``%`` to ``.*`` gives a backtracking regex that takes
O(n^k) steps for k wildcards (``'%a%a%a%a%a%a%a%a%b'`` against a long run of
``a`` never finishes).  Instead the pattern is split at ``%`` into fixed-length
*segments*.  Because every segment has a fixed length, placing each middle
segment at its leftmost occurrence is optimal (it leaves the most room for the
rest), so no choice is ever revisited:

* the first segment must match at the start and the last one at the end
  (direct comparisons, checked first so most mismatches cost O(pattern));
* a middle segment without ``_`` is found with ``str.find`` (CPython's
  two-way search: linear worst case);
* a middle segment with ``_`` is found with a bit-parallel Shift-And scan
  (one big-int step per character: O(n * ceil(m / 30)) digit operations).

Total work is O(len(value) + len(pattern)), times ceil(m/30) only for
segments that contain ``_``; there is no exponential case.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["compile_like"]

# A segment is a tuple of items: a one-character str is a literal character,
# None is the ``_`` wildcard.
_Segment = tuple[str | None, ...]
Matcher = Callable[[str], bool]


def _parse(pattern: str) -> list[_Segment | None]:
    """Pattern -> list of segments, with None standing for each ``%`` run."""
    items: list[_Segment | None] = []
    current: list[str | None] = []
    index = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        if char == "\\" and index + 1 < length and pattern[index + 1] in "%_":
            current.append(pattern[index + 1])
            index += 2
            continue
        if char == "%":
            items.append(tuple(current))
            items.append(None)
            current = []
        elif char == "_":
            current.append(None)
        else:
            current.append(char)
        index += 1
    items.append(tuple(current))
    return items


def _literal(segment: _Segment) -> str | None:
    """The segment as a plain string when it has no ``_`` wildcard."""
    if None in segment:
        return None
    return "".join(segment)  # type: ignore[arg-type]


def _checker(segment: _Segment) -> Callable[[str, int], bool]:
    """Function telling whether ``segment`` matches ``text`` at ``start``.

    The caller guarantees ``start + len(segment) <= len(text)``.
    """
    literal = _literal(segment)
    if literal is not None:
        return lambda text, start: text.startswith(literal, start)
    fixed = tuple((offset, item) for offset, item in enumerate(segment) if item is not None)
    return lambda text, start: all(text[start + offset] == item for offset, item in fixed)


def _finder(segment: _Segment) -> Callable[[str, int, int], int]:
    """Function giving the leftmost i in [pos, end - len] where ``segment`` matches, or -1."""
    literal = _literal(segment)
    if literal is not None:
        return lambda text, pos, end: text.find(literal, pos, end)
    width = len(segment)
    if all(item is None for item in segment):
        return lambda text, pos, end: pos if pos + width <= end else -1
    # Shift-And: bit i of `state` is set when segment[:i+1] matches the text
    # ending at the current character.
    any_char = 0
    masks: dict[str, int] = {}
    for bit, item in enumerate(segment):
        if item is None:
            any_char |= 1 << bit
        else:
            masks[item] = masks.get(item, 0) | (1 << bit)
    for char in masks:
        masks[char] |= any_char
    accept = 1 << (width - 1)
    # The longest literal run inside the segment, and its offset: a match must
    # contain it, so str.find skips ahead (or fails fast) before the bit scan.
    anchor, anchor_offset, run_start = "", 0, 0
    for index, item in enumerate((*segment, None)):
        if item is None:
            if index - run_start > len(anchor):
                anchor = "".join(segment[run_start:index])  # type: ignore[arg-type]
                anchor_offset = run_start
            run_start = index + 1

    def find(text: str, pos: int, end: int) -> int:
        hit = text.find(anchor, pos + anchor_offset, end)
        if hit < 0:
            return -1
        state = 0
        get = masks.get
        for index in range(max(pos, hit - anchor_offset), end):
            state = ((state << 1) | 1) & get(text[index], any_char)
            if state & accept:
                return index - width + 1
        return -1

    return find


def compile_like(pattern: str) -> Matcher:
    """Compile a (decoded) LIKE pattern into a ``str -> bool`` matcher."""
    items = _parse(pattern)
    segments = [item for item in items if item is not None]
    if len(segments) == 1:  # no %: the whole value must match
        only = segments[0]
        literal = _literal(only)
        if literal is not None:
            return lambda text: text == literal
        size, check = len(only), _checker(only)
        return lambda text: len(text) == size and check(text, 0)

    first, middle, last = segments[0], segments[1:-1], segments[-1]
    first_len, last_len = len(first), len(last)
    minimum = first_len + last_len + sum(len(segment) for segment in middle)
    finders = [(_finder(segment), len(segment)) for segment in middle if segment]
    first_lit, last_lit = _literal(first), _literal(last)

    if not finders and first_lit is not None and last_lit is not None:
        # The common shapes: 'prefix%', '%suffix', 'prefix%suffix', '%'.
        return lambda text: (
            len(text) >= minimum and text.startswith(first_lit) and text.endswith(last_lit)
        )

    check_first, check_last = _checker(first), _checker(last)

    def match(text: str) -> bool:
        length = len(text)
        if length < minimum:
            return False
        if not check_first(text, 0) or not check_last(text, length - last_len):
            return False
        pos = first_len
        end = length - last_len
        for find, width in finders:
            found = find(text, pos, end)
            if found < 0:
                return False
            pos = found + width
        return True

    return match
