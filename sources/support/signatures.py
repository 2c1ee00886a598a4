"""Webhook authentication checks, all in constant time.

Why a module of its own: three sources verify requests (GitHub HMAC, GitLab token,
generic HMAC or bearer) and each compare must be ``hmac.compare_digest`` so the time it
takes tells an attacker nothing about how many leading bytes were right. Parsing the
header is strict and bounded: anything but ``sha256=`` followed by 64 hex digits is a
failed check, never an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

SHA256_PREFIX: Final = "sha256="
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")
MAX_TOKEN_CHARS: Final = 4096


def sha256_signature(secret: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, body)>``, the form GitHub sends in
    ``X-Hub-Signature-256``."""
    return SHA256_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_sha256_signature(secret: bytes, body: bytes, header_value: str | None) -> bool:
    """True when ``header_value`` is ``sha256=<hex>`` and the HMAC of ``body`` matches.

    The hex digits may be upper or lower case; the compare runs over equal-length
    digests, so its time does not depend on the received value.
    """
    if header_value is None or not header_value.isascii():
        return False
    if not header_value.startswith(SHA256_PREFIX):
        return False
    received = header_value[len(SHA256_PREFIX) :]
    if not _HEX64.match(received):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, bytes.fromhex(received))


def well_formed_sha256_signature(header_value: str | None) -> bool:
    """True when ``header_value`` has the form ``sha256=<64 hex digits>``: checked
    before the body is read, so a request that cannot pass is refused without it."""
    if header_value is None or not header_value.isascii():
        return False
    return header_value.startswith(SHA256_PREFIX) and bool(
        _HEX64.match(header_value[len(SHA256_PREFIX) :])
    )


def verify_token(secret: bytes, received: str | None) -> bool:
    """True when ``received`` equals the shared token (GitLab's ``X-Gitlab-Token``)."""
    if received is None or len(received) > MAX_TOKEN_CHARS:
        return False
    try:
        # The HTTP server decodes header bytes that are not UTF-8 as lone surrogates
        # (surrogateescape); those give back the bytes the client sent, and anything
        # that cannot be encoded is simply a wrong token, never an exception.
        token = received.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return False
    return hmac.compare_digest(secret, token)


def verify_bearer(secret: bytes, authorization: str | None) -> bool:
    """True when ``Authorization`` is ``Bearer <token>`` with the shared token.

    The scheme name is case-insensitive (RFC 9110 section 11.1)."""
    if authorization is None:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return verify_token(secret, token.strip())
