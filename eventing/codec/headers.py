"""Percent-encoding of ``ce-`` header values, the HTTP binding's most-missed rule.

Encode: space, ``"``, ``%`` and everything outside U+0021-U+007E become ``%XX`` of
the UTF-8 bytes, upper-case hex. Decode: unescape an RFC 7230 quoted-string first,
then exactly one round of percent-decoding (lower-case hex accepted); the result
must be valid UTF-8 (``%C0%A0`` and other overlong forms are rejected).

Why not ``urllib.parse.unquote``: it silently replaces invalid UTF-8 and passes
malformed escapes through, which the spec forbids.
"""

from __future__ import annotations

import re
from functools import lru_cache

from eventing.errors import InvalidEventError

_SAFE = frozenset(range(0x21, 0x7F)) - {ord('"'), ord("%")}
_HEX = "0123456789ABCDEFabcdef"

needs_encoding = re.compile(r"[^!#$&-~]").search
"""A character that must be percent-encoded (outside U+0021-U+007E, ``"`` or ``%``)
in the string, or None: one C-level scan, where a value that needs nothing (almost
all of them) used to cost a Python loop over its characters."""


def encode_value(value: str) -> str:
    """Percent-encode one attribute value for a ``ce-`` header."""
    if needs_encoding(value) is None:
        return value
    return _escape(value)


@lru_cache(maxsize=1024)
def _escape(value: str) -> str:
    out: list[str] = []
    for char in value:
        code = ord(char)
        if code in _SAFE:
            out.append(char)
        else:
            out.extend(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def decode_value(name: str, raw: str) -> str:
    """Decode one ``ce-`` header value; raise :class:`InvalidEventError` naming the header."""
    value = raw
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = _unquote_string(name, value[1:-1])
    if "%" not in value:
        if not value.isascii():
            _check_text(name, value)
        return value
    return _percent_decode(name, value)


def _unquote_string(name: str, inner: str) -> str:
    out: list[str] = []
    chars = iter(inner)
    for char in chars:
        if char == "\\":
            nxt = next(chars, None)
            if nxt is None:
                raise InvalidEventError(f"header ce-{name}: dangling backslash in quoted string")
            out.append(nxt)
        elif char == '"':
            raise InvalidEventError(f"header ce-{name}: unescaped quote in quoted string")
        else:
            out.append(char)
    return "".join(out)


def _percent_decode(name: str, value: str) -> str:
    buf = bytearray()
    i = 0
    n = len(value)
    while i < n:
        char = value[i]
        if char == "%":
            hexpart = value[i + 1 : i + 3]
            if len(hexpart) != 2 or hexpart[0] not in _HEX or hexpart[1] not in _HEX:
                raise InvalidEventError(
                    f"header ce-{name}: invalid percent-encoding at position {i}"
                )
            buf.append(int(hexpart, 16))
            i += 3
        else:
            try:
                buf.extend(char.encode("utf-8", "surrogateescape"))
            except UnicodeEncodeError:  # a lone surrogate no HTTP parser produces
                raise InvalidEventError(f"header ce-{name}: value is not valid UTF-8") from None
            i += 1
    try:
        return buf.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise InvalidEventError(
            f"header ce-{name}: value is not valid UTF-8 after percent-decoding"
        ) from None


def _check_text(name: str, value: str) -> None:
    try:
        value.encode("utf-8", "strict")
    except UnicodeEncodeError:
        raise InvalidEventError(f"header ce-{name}: value is not valid UTF-8") from None
