"""What went over the wire, read independently of the code under test.

The conformance tests must not judge the broker's codec with the same codec, so this
module decodes a delivered request (binary or structured) with the standard library
only, percent-encodes header values with :func:`urllib.parse.quote`, and speaks raw
HTTP/1.1 over an asyncio socket for requests aiohttp cannot (or will not) send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from tests.support.subscriber import Received

#: Extensions the broker adds on the way in; ``diff --ignore-additions`` ignores them.
BROKER_ADDED = frozenset({"knativearrivaltime", "knativebrokerttl"})

# HTTP binding §3.1.3.2: everything in U+0021-U+007E except `"` and `%` goes as is.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def percent_encode(value: str) -> str:
    """A ``ce-`` header value as the HTTP binding says a sender writes it."""
    return quote(value, safe=_SAFE)


def percent_decode(value: str) -> str:
    """One round of percent-decoding, strict UTF-8 (raises ``UnicodeDecodeError``)."""
    return unquote_to_bytes(value).decode("utf-8")


def canonical(value: object) -> str:
    """The canonical string form of a JSON attribute value (spec §3.1.1)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def is_json_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


@dataclass
class WireEvent:
    """A delivered event as the subscriber saw it on the wire."""

    mode: str
    """``binary`` or ``structured``."""
    attributes: dict[str, str]
    """Every attribute in its canonical string form."""
    data: bytes | None
    """The data bytes (structured JSON data: its compact JSON text)."""

    def without_additions(self) -> dict[str, str]:
        return {k: v for k, v in self.attributes.items() if k not in BROKER_ADDED}


def read_delivery(received: Received) -> WireEvent:
    """Decode one request the broker delivered, without the project's codec."""
    content_type = _header(received.headers, "Content-Type")
    if content_type is not None and content_type.lower().startswith("application/cloudevents"):
        return _read_structured(received.body)
    attributes: dict[str, str] = {}
    for name, value in received.headers.items():
        lowered = name.lower()
        if lowered.startswith("ce-"):
            attributes[lowered[3:]] = percent_decode(value)
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return WireEvent("binary", attributes, received.body or None)


def _read_structured(body: bytes) -> WireEvent:
    obj = json.loads(body)
    assert isinstance(obj, dict), body
    attributes = {
        k: canonical(v)
        for k, v in obj.items()
        if k not in ("data", "data_base64") and v is not None
    }
    data: bytes | None = None
    if obj.get("data_base64") is not None:
        data = base64.b64decode(obj["data_base64"], validate=True)
    elif "data" in obj:
        value = obj["data"]
        if attributes.get("specversion") == "0.3" and "datacontentencoding" in attributes:
            assert attributes.pop("datacontentencoding") == "base64"
            data = base64.b64decode(value, validate=True)
        elif is_json_type(attributes.get("datacontenttype", "application/json")):
            data = compact_json(value)
        else:
            assert isinstance(value, str), value
            data = value.encode("utf-8")
    return WireEvent("structured", attributes, data)


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def same_data(content_type: str | None, got: bytes | None, want: bytes | None) -> bool:
    """Data equality: parsed JSON for JSON content types, else the exact bytes."""
    if got is None or want is None:
        return got == want
    if is_json_type(content_type):
        try:
            return bool(json.loads(got) == json.loads(want))
        except ValueError:
            return got == want
    return got == want


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def header(received: Received, name: str) -> str | None:
    return _header(received.headers, name)


# -- raw HTTP/1.1 ----------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes


def request_bytes(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> bytes:
    """A raw HTTP/1.1 request; ``Host`` from the URL; ``Content-Length`` computed."""
    parts = urlsplit(url)
    lines = [f"{method} {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


async def open_raw(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def read_response(reader: asyncio.StreamReader) -> RawResponse | None:
    """One response, or None when the server closed the connection without one."""
    try:
        status_line = await reader.readline()
    except ConnectionError:
        return None
    if not status_line:
        return None
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return RawResponse(status, headers, body)


async def raw_exchange(url: str, request: bytes, timeout: float = 20.0) -> RawResponse | None:
    """Send ``request`` as is on a fresh connection; the response, or None if closed."""
    reader, writer = await open_raw(url)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await read_response(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
