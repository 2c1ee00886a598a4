"""The frames ingress workers and the main process exchange over a socketpair.

Why a hand-rolled framing and not pickle or JSON per message: the hot frame carries an
event's attributes and its data bytes; data must stay opaque bytes (never decoded or
base64-encoded) and the frame must be cheap to build and parse. A frame is a 4-byte
big-endian length, a 1-byte kind, a 4-byte request id, and a payload.

A publish payload is :mod:`marshal` data of plain values only (str, int, bool, bytes,
None, in tuples, lists and dicts): both ends are our own processes of the same
interpreter, so its format is the same on both, and one C call encodes or decodes the
whole frame (a JSON parse of each event's attributes was the largest part of the main
process's IPC cost). Never pickle: nothing in a frame can name code to run. The
decoder checks the shape of what it got and refuses anything else (``ValueError``);
the attributes were validated by the worker, which also sends them as compact JSON,
the form the store writes, so the main process does not encode them again.

Worker -> main: ``P`` publish (broker key, mode, events), ``W`` a webhook request,
``A`` a webhook request's headers to authenticate before its body is read, ``S``
counters, ``T`` events the worker produced to a broker itself (for the main process's
tap: the dashboard, ``eventing tail``, ``explain``, the trace exporter; no answer).
Main -> worker: ``R`` a publish result, ``H`` a webhook response, ``X`` stop accepting
and exit once in-flight requests are answered, ``F`` a broker removed while running
(the worker stops publishing to it itself; its requests go to the main process).
"""

from __future__ import annotations

import asyncio
import json
import marshal
import struct
from collections.abc import Sequence
from typing import Any, Final

from eventing.events import Event

HEAD: Final = struct.Struct(">IcI")  # length of the rest, kind, request id
U32: Final = struct.Struct(">I")
MAX_FRAME: Final = 256 * 1024 * 1024
MARSHAL_VERSION: Final = 4
ANSWER_TIMEOUT: Final = 30.0
"""Seconds a worker waits for the main process's answer to a request (then 503)."""

PUBLISH: Final = b"P"
WEBHOOK: Final = b"W"
AUTH: Final = b"A"
STATS: Final = b"S"
TAP: Final = b"T"
RESULT: Final = b"R"
RESPONSE: Final = b"H"
STOP: Final = b"X"
FORGET: Final = b"F"

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
    size = len(buffer)
    with memoryview(buffer) as view:  # one copy per payload, not two (slice, bytes)
        while size - offset >= 9:
            length, kind, request_id = HEAD.unpack_from(buffer, offset)
            if length > MAX_FRAME or length < 5:
                raise ValueError(f"frame of {length} bytes is out of bounds")
            end = offset + 4 + length
            if end > size:
                break
            frames.append((kind, request_id, bytes(view[offset + 9 : end])))
            offset = end
    del buffer[:offset]
    return frames


def encode_publish(broker: str, mode: str, events: Sequence[Event]) -> bytes:
    items = [(event.attributes_json(), event.attributes, event.data) for event in events]
    return marshal.dumps((broker, mode, items), MARSHAL_VERSION)


def decode_publish(payload: bytes | memoryview) -> tuple[str, str, list[Event]]:
    """The broker key, mode and events of a publish payload; ``ValueError`` for a
    payload that is not one (truncated, or of another shape)."""
    broker, mode, items = _triple(
        _loads(payload, "publish frame"), "a publish frame is (broker, mode, events)"
    )
    if type(broker) is not str or type(mode) is not str or type(items) is not list:
        raise ValueError("a publish frame is (broker, mode, events)")
    events: list[Event] = []
    for item in items:
        if type(item) is not tuple or len(item) != 3:
            raise ValueError("an event in a publish frame is (json, attributes, data)")
        encoded, attributes, data = item
        if (
            type(encoded) is not str
            or type(attributes) is not dict
            or not (data is None or type(data) is bytes)
        ):
            raise ValueError("an event in a publish frame is (json, attributes, data)")
        events.append(Event(attributes, data, encoded=encoded))
    return broker, mode, events


def encode_tap(broker: str, events: Sequence[Event]) -> bytes:
    """(broker, count, items): the items (attributes and data size of each event: the
    tap keeps no data) marshalled on their own, so the main process can count them
    without decoding them (:func:`decode_tap_items` when somebody looks)."""
    items = marshal.dumps([(e.attributes, len(e.data or b"")) for e in events], MARSHAL_VERSION)
    return marshal.dumps((broker, len(events), items), MARSHAL_VERSION)


def decode_tap(payload: bytes | memoryview) -> tuple[str, int, bytes]:
    """The broker key, event count and undecoded items of a tap payload; ``ValueError``
    for anything else."""
    broker, count, items = _triple(
        _loads(payload, "tap frame"), "a tap frame is (broker, count, items)"
    )
    if type(broker) is not str or type(count) is not int or type(items) is not bytes:
        raise ValueError("a tap frame is (broker, count, items)")
    return broker, count, items


def decode_tap_items(items: bytes) -> list[tuple[dict[str, Any], int]]:
    """(attributes, data size) of each event of a tap frame's items; ``ValueError``
    for anything else."""
    value = _loads(items, "tap items")
    if type(value) is not list:
        raise ValueError("tap items are a list")
    for item in value:
        if (
            type(item) is not tuple
            or len(item) != 2
            or type(item[0]) is not dict
            or type(item[1]) is not int
        ):
            raise ValueError("an event in a tap frame is (attributes, data size)")
    return value


def _loads(payload: bytes | memoryview, what: str) -> Any:
    """A marshalled value from our own worker process; ``ValueError`` when it is not
    one (truncated, or not marshal at all)."""
    try:
        return marshal.loads(payload)  # noqa: S302 - written by our own worker process
    except (EOFError, TypeError, ValueError) as exc:
        raise ValueError(f"undecodable {what}: {exc}") from None


def _triple(value: Any, shape: str) -> tuple[Any, Any, Any]:
    if type(value) is not tuple or len(value) != 3:
        raise ValueError(shape)
    return value


def encode_result(status: int, retry_after: float = 0.0, message: str = "") -> bytes:
    return bytes([status]) + U32.pack(int(retry_after * 1000)) + message.encode()


OK_RESULT: Final = encode_result(OK)
"""The answer to almost every publish, built once."""


def decode_result(payload: bytes) -> tuple[int, float, str]:
    (retry_ms,) = U32.unpack_from(payload, 1)
    return payload[0], retry_ms / 1000, bytes(payload[5:]).decode(errors="replace")


def encode_json_and_body(head: Any, body: bytes) -> bytes:
    raw = json.dumps(head, separators=(",", ":")).encode()
    return U32.pack(len(raw)) + raw + body


def decode_json_and_body(payload: bytes) -> tuple[Any, bytes]:
    (length,) = U32.unpack_from(payload, 0)
    return json.loads(bytes(payload[4 : 4 + length])), bytes(payload[4 + length :])
