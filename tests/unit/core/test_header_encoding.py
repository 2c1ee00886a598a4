"""The HTTP binding's percent-encoding rules (cloudevents-conformance.md §2.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventing.codec.headers import decode_value, encode_value
from eventing.errors import InvalidEventError


def test_spec_example_encodes_as_the_spec_shows() -> None:
    assert encode_value("Euro € 😀") == "Euro%20%E2%82%AC%20%F0%9F%98%80"


def test_spec_example_decodes() -> None:
    assert decode_value("x", "Euro%20%E2%82%AC%20%F0%9F%98%80") == "Euro € 😀"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("a%20b", "a b"),
        ("%e2%82%ac", "€"),  # lower-case hex is accepted
        ("%41", "A"),  # unnecessary encoding is accepted
        ('"quoted value"', "quoted value"),  # RFC 7230 quoted-string
        ('"with \\"escaped\\" quote"', 'with "escaped" quote'),
        ('"a%20b"', "a b"),  # unquote first, then percent-decode once
        ("%2541", "%41"),  # exactly one round of decoding
    ],
)
def test_decoding(raw: str, expected: str) -> None:
    assert decode_value("x", raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "%C0%A0",  # overlong encoding: invalid UTF-8
        "%FF",
        "%E2%82",  # truncated sequence
        "100%",  # bare percent
        "%G0",
        '"dangling\\"',
        '"inner"quote"',
    ],
)
def test_invalid_values_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidEventError, match="ce-x"):
        decode_value("x", raw)


@pytest.mark.parametrize("char", [" ", '"', "%", "\n", "\x7f", "é"])
def test_characters_that_must_be_encoded(char: str) -> None:
    encoded = encode_value(f"a{char}b")
    assert encoded != f"a{char}b"
    assert encoded.startswith("a%")
    assert encoded.endswith("b")
    assert decode_value("x", encoded) == f"a{char}b"


@given(st.text())
def test_round_trip(text: str) -> None:
    encoded = encode_value(text)
    assert all(0x21 <= ord(c) <= 0x7E and c not in ' "' for c in encoded)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates cannot round-trip; events reject them anyway
    assert decode_value("x", encoded) == text
