"""Request bodies sent with ``Content-Encoding``: which are accepted, decoded strictly
and bounded.

Why our own decoding and not the HTTP server's: aiohttp's automatic decompression
accepted a truncated gzip stream as a complete (empty) body, so an event was stored
with data the producer never sent; it raised an unhandled error (500) for a corrupt
stream; it applied only one of ``gzip, gzip``; and it inflated without a bound before
the ingress saw the size. Here:

* accepted: no encoding, ``identity``, ``gzip`` (or ``x-gzip``) and ``deflate`` (the
  zlib format of RFC 9110 §8.4.1.2, or raw deflate as some clients send it), one
  encoding per request. Anything else, or a list of encodings, is 415 (RFC 9110
  §15.5.16), so the sender can retry without compression;
* the stream must be complete and alone: a truncated or corrupt stream, or bytes after
  its end (a second gzip member), is 400;
* inflation stops at the body limit: a larger result is 413, whatever the
  compression ratio, and no more than ``limit + 1`` bytes are ever produced.
"""

from __future__ import annotations

import zlib
from typing import Final

SUPPORTED: Final = ("gzip", "deflate")


class EncodingError(Exception):
    """A body that cannot be decoded: ``status`` (400, 413 or 415) and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_coding(header: str | None) -> str | None:
    """The one coding a ``Content-Encoding`` value names (None for none or identity);
    raise :class:`EncodingError` 415 for anything else."""
    if header is None:
        return None
    coding = header.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding == "x-gzip":
        return "gzip"
    if coding in SUPPORTED:
        return coding
    raise EncodingError(
        415, "unsupported Content-Encoding: send one of gzip, deflate or none (a single one)"
    )


def decode(coding: str | None, body: bytes, limit: int) -> bytes:
    """``body`` decoded per ``coding`` (from :func:`content_coding`), at most ``limit``
    bytes; raise :class:`EncodingError` for a stream that is not exactly one complete,
    valid stream, or inflates past ``limit``."""
    if coding is None:
        return body
    if coding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0:
        wbits = zlib.MAX_WBITS  # zlib header
    else:
        wbits = -zlib.MAX_WBITS  # raw deflate
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise EncodingError(400, f"the body is not valid {coding} data") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise EncodingError(413, f"the decoded body is larger than {limit} bytes")
    if not inflater.eof:
        raise EncodingError(400, f"the {coding} body is truncated")
    if inflater.unused_data:
        raise EncodingError(400, f"bytes after the end of the {coding} stream")
    return out
