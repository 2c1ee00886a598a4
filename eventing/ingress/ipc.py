"""The frames ingress workers and the main process exchange over a socketpair.

Why a hand-rolled framing and not pickle or JSON per message: the hot frame carries an
event's attributes and its data bytes; data must stay opaque bytes (never decoded or
base64-encoded) and the frame must be cheap to build and parse. A frame is a 4-byte
big-endian length, a 1-byte kind, a 4-byte request id, and a payload.

Worker -> main: ``P`` publish (broker key, mode, events), ``W`` a webhook request,
``A`` a webhook request's headers to authenticate before its body is read, ``S``
counters. Main -> worker: ``R`` a publish result, ``H`` a webhook response,
``X`` stop accepting and exit once in-flight requests are answered.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Sequence
from typing import Any, Final

from eventing.events import Event

HEAD: Final = struct.Struct(">IcI")  # length of the rest, kind, request id
U16: Final = struct.Struct(">H")
U32: Final = struct.Struct(">I")
I32: Final = struct.Struct(">i")
MAX_FRAME: Final = 256 * 1024 * 1024
ANSWER_TIMEOUT: Final = 30.0
"""Seconds a worker waits for the main process's answer to a request (then 503)."""

PUBLISH: Final = b"P"
WEBHOOK: Final = b"W"
AUTH: Final = b"A"
STATS: Final = b"S"
RESULT: Final = b"R"
RESPONSE: Final = b"H"
STOP: Final = b"X"

OK: Final = 0
FULL: Final = 1
UNAVAILABLE: Final = 2


class Writer:
    """Coalesces frames written in one event-loop iteration into one ``write`` call (one
    system call instead of one per frame when many requests are in flight)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self._out: list[bytes] = []

    def send(self, data: bytes) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if not self.transport.is_closing():
            self.transport.write(b"".join(out))


def frame(kind: bytes, request_id: int, payload: bytes = b"") -> bytes:
    return HEAD.pack(len(payload) + 5, kind, request_id) + payload


def split(buffer: bytearray) -> list[tuple[bytes, int, bytes]]:
    """The complete frames in ``buffer`` (removed from it); a partial one stays."""
    frames: list[tuple[bytes, int, bytes]] = []
    offset = 0
    while len(buffer) - offset >= 9:
        length, kind, request_id = HEAD.unpack_from(buffer, offset)
        if length > MAX_FRAME:
            raise ValueError(f"frame of {length} bytes is over the limit")
        end = offset + 4 + length
        if end > len(buffer):
            break
        frames.append((kind, request_id, bytes(buffer[offset + 9 : end])))
        offset = end
    del buffer[:offset]
    return frames


def encode_publish(broker: str, mode: str, events: Sequence[Event]) -> bytes:
    key = broker.encode()
    parts = [U16.pack(len(key)), key, mode[:1].encode(), U32.pack(len(events))]
    for event in events:
        attrs = event.attributes_json().encode()
        parts.append(U32.pack(len(attrs)))
        parts.append(attrs)
        if event.data is None:
            parts.append(I32.pack(-1))
        else:
            parts.append(I32.pack(len(event.data)))
            parts.append(event.data)
    return b"".join(parts)


def decode_publish(payload: bytes) -> tuple[str, str, list[Event]]:
    (key_len,) = U16.unpack_from(payload, 0)
    pos = 2 + key_len
    broker = bytes(payload[2:pos]).decode()
    mode = bytes(payload[pos : pos + 1]).decode()
    (count,) = U32.unpack_from(payload, pos + 1)
    pos += 5
    events: list[Event] = []
    for _ in range(count):
        (attrs_len,) = U32.unpack_from(payload, pos)
        pos += 4
        encoded = payload[pos : pos + attrs_len].decode()
        attributes = json.loads(encoded)
        pos += attrs_len
        (data_len,) = I32.unpack_from(payload, pos)
        pos += 4
        data = None
        if data_len >= 0:
            data = bytes(payload[pos : pos + data_len])
            pos += data_len
        events.append(Event(attributes, data, encoded=encoded))
    return broker, mode, events


def encode_result(status: int, retry_after: float = 0.0, message: str = "") -> bytes:
    return bytes([status]) + U32.pack(int(retry_after * 1000)) + message.encode()


def decode_result(payload: bytes) -> tuple[int, float, str]:
    (retry_ms,) = U32.unpack_from(payload, 1)
    return payload[0], retry_ms / 1000, bytes(payload[5:]).decode(errors="replace")


def encode_json_and_body(head: Any, body: bytes) -> bytes:
    raw = json.dumps(head, separators=(",", ":")).encode()
    return U32.pack(len(raw)) + raw + body


def decode_json_and_body(payload: bytes) -> tuple[Any, bytes]:
    (length,) = U32.unpack_from(payload, 0)
    return json.loads(bytes(payload[4 : 4 + length])), bytes(payload[4 + length :])
