"""The frames between an ingress worker and the main process (eventing/ingress/ipc.py):
what the worker encodes the main process decodes to equal events, with the attributes'
JSON kept for the store; anything else is refused with ``ValueError`` (a bug in our own
worker, never a crash of the main process); frames are split however the bytes arrive."""

from __future__ import annotations

import json
import marshal

import pytest

from eventing.events import Event
from eventing.ingress import ipc


def events() -> list[Event]:
    return [
        Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}, b"\x00\xff data"),
        Event({"specversion": "1.0", "id": "2", "source": "/s", "type": "t", "n": 7, "b": True}),
        Event({"specversion": "1.0", "id": "é\u2028", "source": "/s", "type": "t"}, b""),
    ]


def test_publish_round_trip() -> None:
    sent = events()
    broker, mode, got = ipc.decode_publish(ipc.encode_publish("ns/b", "x", sent))
    assert (broker, mode) == ("ns/b", "x")
    assert got == sent
    for event in got:
        assert json.loads(event.attributes_json()) == event.attributes
        assert event.encoded is not None  # the store writes it as it came


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x01garbage",
        marshal.dumps(("ns/b", "x", [("{}", {}, b"")]))[:-3],  # truncated
        marshal.dumps(["ns/b", "x", []]),  # not a tuple
        marshal.dumps(("ns/b", "x")),
        marshal.dumps((1, "x", [])),
        marshal.dumps(("ns/b", "x", [("{}", {}, b"", 1)])),
        marshal.dumps(("ns/b", "x", [(b"{}", {}, b"")])),
        marshal.dumps(("ns/b", "x", [("{}", [], b"")])),
        marshal.dumps(("ns/b", "x", [("{}", {}, "text")])),
        marshal.dumps(("ns/b", "x", [compile("1", "f", "eval")])),
    ],
)
def test_malformed_publish_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        ipc.decode_publish(payload)


def test_tap_round_trip() -> None:
    sent = events()
    broker, count, items = ipc.decode_tap(ipc.encode_tap("ns/b", sent))
    assert (broker, count) == ("ns/b", len(sent))
    assert ipc.decode_tap_items(items) == [(e.attributes, len(e.data or b"")) for e in sent]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        marshal.dumps(("ns/b", 1, b"x"))[:-3],  # truncated
        marshal.dumps(["ns/b", 1, b""]),
        marshal.dumps((1, 1, b"")),
        marshal.dumps(("ns/b", "1", b"")),
        marshal.dumps(("ns/b", 1, [])),
        marshal.dumps(("ns/b", 1, b"", 1)),
        marshal.dumps(("ns/b", 1, compile("1", "f", "eval"))),
    ],
)
def test_malformed_tap_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        ipc.decode_tap(payload)


@pytest.mark.parametrize(
    "items",
    [
        b"",
        marshal.dumps([({}, 1)])[:-3],  # truncated
        marshal.dumps((({}, 1),)),
        marshal.dumps([({}, 1, 1)]),
        marshal.dumps([([], 1)]),
        marshal.dumps([({}, b"data")]),
        marshal.dumps([compile("1", "f", "eval")]),
    ],
)
def test_malformed_tap_items_are_refused(items: bytes) -> None:
    with pytest.raises(ValueError):
        ipc.decode_tap_items(items)


def test_split_keeps_partial_frames_and_refuses_bad_lengths() -> None:
    frames = ipc.frame(ipc.PUBLISH, 1, b"abc") + ipc.frame(ipc.RESULT, 2, ipc.OK_RESULT)
    buffer = bytearray()
    got = []
    for i in range(len(frames)):  # one byte at a time
        buffer += frames[i : i + 1]
        got += ipc.split(buffer)
    assert got == [(ipc.PUBLISH, 1, b"abc"), (ipc.RESULT, 2, ipc.OK_RESULT)]
    assert buffer == bytearray()
    assert ipc.decode_result(ipc.OK_RESULT) == (ipc.OK, 0.0, "")
    for length in (0, 4, ipc.MAX_FRAME + 1):
        with pytest.raises(ValueError):
            ipc.split(bytearray(ipc.HEAD.pack(length, b"P", 1) + b"x" * 16))
