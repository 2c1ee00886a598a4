"""Property-based fuzzing of the ingress decoders.

Every decoder the ingress runs on untrusted bytes (``headers.decode_value``,
``http.decode_binary``, ``jsonformat.parse_structured``, ``jsonformat.parse_batch``
plus ``event_from_json`` per entry) gets random input and mutations of valid
events (flipped bytes, truncation, insertions, random header names and values,
random JSON). Two properties:

1. they only ever raise :class:`eventing.errors.InvalidEventError` (anything else
   would be a 500 at the ingress);
2. whatever they accept is a valid event (``eventing.events.validate``) that
   survives the binary round trip ``encode_binary`` -> ``decode_binary`` with equal
   attributes (canonical string form: binary mode carries strings only) and equal
   data. Binary mode cannot tell an empty body from no data, so ``b""`` data is
   compared as no data. Structured events also survive ``to_json_bytes`` ->
   ``parse_structured`` with attributes of the same type and equal data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventing.codec import headers
from eventing.codec import http as binding
from eventing.codec.jsonformat import event_from_json, parse_batch, parse_structured, to_json_bytes
from eventing.errors import InvalidEventError
from eventing.events import Event, canonical, validate

T = TypeVar("T")

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def rejected_or(call: Callable[[], T]) -> T | None:
    """The result, or None when the input was refused with InvalidEventError. Any
    other exception propagates and fails the property."""
    try:
        return call()
    except InvalidEventError:
        return None


def _canonical(event: Event) -> dict[str, str]:
    return {k: canonical(v) for k, v in event.attributes.items()}


def assert_valid_and_round_trips(event: Event) -> None:
    validate(event.attributes)
    head, body = binding.encode_binary(event)
    content_type = head.pop("Content-Type", None)
    back = binding.decode_binary(head.items(), content_type, body)
    assert _canonical(back) == _canonical(event)
    assert back.data == (event.data or None)


def assert_structured_round_trip(event: Event) -> None:
    back = parse_structured(to_json_bytes(event))
    assert back.attributes == event.attributes
    assert back.data == event.data


# -- strategies ----------------------------------------------------------------------------

NAMES = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "schemaurl",
        "datacontentencoding",
        "knativebrokerttl",
        "traceparent",
        "myext",
        "data",
        "Upper",
        "a_b",
        "x" * 21,
        "",
    ]
)
ANY_NAME = st.one_of(NAMES, st.text(max_size=25))
VALUES = st.one_of(
    st.sampled_from(
        [
            "1.0",
            "0.3",
            "",
            "2018-04-26T14:48:09+02:00",
            "2018-04-26T14:48:09.1Z",
            "application/json",
            "text/plain",
            "base64",
            "null",
            "true",
        ]
    ),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    VALUES,
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

BASE = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}


@st.composite
def event_objects(draw: st.DrawFn) -> dict[str, Any]:
    """JSON objects shaped like structured events, valid or nearly so."""
    obj: dict[str, Any] = {}
    for name, value in BASE.items():
        if draw(st.integers(0, 9)):  # usually keep each required attribute
            obj[name] = value
    if draw(st.booleans()):
        obj["specversion"] = draw(st.sampled_from(["1.0", "0.3", "0.2", 1.0, None]))
    obj.update(draw(st.dictionaries(NAMES, JSON_SCALARS, max_size=4)))
    choice = draw(st.integers(0, 4))
    if choice == 1:
        obj["data"] = draw(JSON)
    elif choice == 2:
        obj["data_base64"] = draw(st.one_of(st.binary(max_size=20).map(_b64), VALUES))
    elif choice == 3:
        obj["data"] = draw(st.binary(max_size=20).map(_b64))
        obj["datacontentencoding"] = draw(st.sampled_from(["base64", "BASE64", "", "gzip"]))
    return obj


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random edits: flips, truncation, insertion, deletion."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not out:
            op = "insert"
        position = draw(st.integers(0, max(0, len(out) - 1)))
        if op == "flip":
            out[position] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del out[position:]
        elif op == "insert":
            out[position:position] = draw(st.binary(min_size=1, max_size=4))
        else:
            del out[position : position + draw(st.integers(1, 4))]
    return bytes(out)


VALID_BODIES = [
    json.dumps({**BASE, "datacontenttype": "application/json", "data": {"a": [1, "é"]}}),
    json.dumps({**BASE, "datacontenttype": "text/plain", "data": "hi", "subject": "s"}),
    json.dumps({**BASE, "data_base64": "AAEC", "ext": 5, "flag": True}),
    json.dumps(
        {
            **BASE,
            "specversion": "0.3",
            "datacontentencoding": "base64",
            "data": "e30=",
            "schemaurl": "http://x",
        }
    ),
    json.dumps({**BASE, "time": "2018-04-26T14:48:09.1234Z", "data": None}),
]


@st.composite
def structured_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(event_objects())).encode()
    if kind == 2:
        return json.dumps(draw(JSON)).encode()
    return draw(mutated(draw(st.sampled_from(VALID_BODIES)).encode()))


HEADER_VALUES = st.one_of(
    VALUES,
    st.binary(max_size=12).map(lambda b: "".join(f"%{x:02x}" for x in b)),
    st.text(alphabet='%0123456789abcdefABCDEFgz"\\ ', max_size=20),
    st.text(max_size=10).map(lambda t: f'"{t}"'),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=10),
)


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[str, str]]:
    items = [(f"ce-{k}", v) for k, v in BASE.items() if draw(st.integers(0, 9))]
    extra = draw(
        st.lists(
            st.tuples(
                st.one_of(
                    NAMES.map(lambda n: f"ce-{n}"),
                    ANY_NAME.map(lambda n: f"ce-{n}"),
                    ANY_NAME,
                    st.sampled_from(["CE-ID", "Ce-Type", "ce-", "content-type"]),
                ),
                HEADER_VALUES,
            ),
            max_size=5,
        )
    )
    items.extend(extra)
    mutate = draw(st.booleans())
    if items and mutate:
        index = draw(st.integers(0, len(items) - 1))
        name, value = items[index]
        items[index] = (
            name,
            draw(mutated(value.encode("utf-8", "surrogatepass"))).decode(
                "utf-8", "surrogateescape"
            ),
        )
    return draw(st.permutations(items))


# -- properties ----------------------------------------------------------------------------


@FUZZ
@given(name=ANY_NAME, raw=HEADER_VALUES)
def test_decode_value_only_raises_invalid_event(name: str, raw: str) -> None:
    value = rejected_or(lambda: headers.decode_value(name, raw))
    if value is None:
        return
    value.encode("utf-8")  # no lone surrogates: valid text
    assert headers.decode_value(name, headers.encode_value(value)) == value


@FUZZ
@given(raw=st.text(max_size=30))
def test_decode_value_on_arbitrary_text(raw: str) -> None:
    value = rejected_or(lambda: headers.decode_value("x", raw))
    if value is not None:
        assert headers.decode_value("x", headers.encode_value(value)) == value


@FUZZ
@given(
    items=header_lists(),
    content_type=st.one_of(
        st.none(),
        VALUES,
        st.sampled_from(
            ["application/json", "text/plain; charset=utf-8", "application/cloudevents+json"]
        ),
    ),
    body=st.one_of(st.binary(max_size=50), st.just(b"")),
)
def test_decode_binary_only_raises_invalid_event(
    items: list[tuple[str, str]], content_type: str | None, body: bytes
) -> None:
    event = rejected_or(lambda: binding.decode_binary(items, content_type, body))
    if event is not None:
        assert_valid_and_round_trips(event)
        assert event.data == (body or None)


@FUZZ
@given(body=structured_bodies())
def test_parse_structured_only_raises_invalid_event(body: bytes) -> None:
    event = rejected_or(lambda: parse_structured(body))
    if event is not None:
        assert_valid_and_round_trips(event)
        assert_structured_round_trip(event)


@FUZZ
@given(obj=event_objects())
def test_event_shaped_objects(obj: dict[str, Any]) -> None:
    event = rejected_or(lambda: event_from_json(obj))
    if event is not None:
        assert_valid_and_round_trips(event)
        assert_structured_round_trip(event)


@st.composite
def batch_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.binary(max_size=100))
    entries = draw(st.lists(st.one_of(event_objects(), JSON), max_size=4))
    body = json.dumps(entries).encode()
    return body if kind == 1 else draw(mutated(body))


@FUZZ
@given(body=batch_bodies())
def test_parse_batch_only_raises_invalid_event(body: bytes) -> None:
    entries = rejected_or(lambda: parse_batch(body))
    if entries is None:
        return
    assert isinstance(entries, list)
    for entry in entries:
        event = rejected_or(partial(event_from_json, entry))
        if event is not None:
            assert_valid_and_round_trips(event)
            assert_structured_round_trip(event)


def test_known_crashers_are_invalid_events() -> None:
    """Inputs the fuzzer found that used to escape as other exceptions."""
    cases: Iterable[Callable[[], object]] = [
        lambda: headers.decode_value("x", "%41\ud800"),  # UnicodeEncodeError
        lambda: parse_structured(
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","x":' + b"1" * 5000 + b"}"
        ),  # int digit limit
    ]
    for case in cases:
        assert rejected_or(case) is None


def test_null_data_base64_does_not_clobber_data() -> None:
    event = parse_structured(
        b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":1},"data_base64":null}'
    )
    assert event.data == b'{"a":1}'
