"""Signature and token checks, including GitHub's documented check value."""

from __future__ import annotations

import pytest

from sources.support.signatures import (
    sha256_signature,
    verify_bearer,
    verify_sha256_signature,
    verify_token,
)

GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_documented_check_value() -> None:
    assert sha256_signature(GITHUB_SECRET, GITHUB_BODY) == GITHUB_SIGNATURE
    assert verify_sha256_signature(GITHUB_SECRET, GITHUB_BODY, GITHUB_SIGNATURE)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        GITHUB_SIGNATURE[:-1],
        GITHUB_SIGNATURE + "0",
        GITHUB_SIGNATURE.replace("sha256=", "sha1="),
        GITHUB_SIGNATURE.replace("sha256=", "SHA256="),
        GITHUB_SIGNATURE[:-1] + "g",
        " " + GITHUB_SIGNATURE,
        "sha256=" + "0" * 64,
    ],
)
def test_malformed_or_wrong_signatures_fail(header: str | None) -> None:
    assert not verify_sha256_signature(GITHUB_SECRET, GITHUB_BODY, header)


def test_signature_depends_on_body_and_secret() -> None:
    assert not verify_sha256_signature(GITHUB_SECRET, b"Hello, World?", GITHUB_SIGNATURE)
    assert not verify_sha256_signature(b"other", GITHUB_BODY, GITHUB_SIGNATURE)


def test_token_and_bearer() -> None:
    assert verify_token(b"t0ken", "t0ken")
    assert not verify_token(b"t0ken", "t0ken ")
    assert not verify_token(b"t0ken", None)
    assert not verify_token(b"t0ken", "x" * 10_000)
    assert verify_bearer(b"t0ken", "Bearer t0ken")
    assert verify_bearer(b"t0ken", "bearer  t0ken ")
    assert not verify_bearer(b"t0ken", "Basic t0ken")
    assert not verify_bearer(b"t0ken", None)
