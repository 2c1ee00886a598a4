"""sdk-java's JSON format vectors posted in structured mode to the ingress.

Expected outcomes (shared/testdata/README.md, from sdk-java ``JsonFormatTest``):
valid files are accepted (202) and delivered with every attribute and the data as
sent; the listed pairs decode to the same event; ``fail_*`` files are refused with
400 and nothing is stored. The two SDK-specific files (an upper-case extension
name, and one with ``_``) are *rejected* by our documented choice: the spec allows
only ``a-z0-9`` in attribute names, and silently lower-casing or dropping them (what
sdk-java does) would hide sender bugs.

What the subscriber received is read with :mod:`tests.support.wire` (standard
library only), not with the broker's codec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TESTDATA, SystemFactory
from tests.support.mesh import (
    assert_nothing_stored,
    broker_doc,
    broker_url,
    manifests,
    post,
    trigger_doc,
)
from tests.support.subscriber import RecordingSubscriber
from tests.support.wire import (
    BROKER_ADDED,
    WireEvent,
    canonical,
    compact_json,
    read_delivery,
    same_data,
)

VECTORS = TESTDATA / "cloudevents-json-vectors"
STRUCTURED = {"Content-Type": "application/cloudevents+json"}

#: Files that must decode to the same event (README "must decode, and decode to the
#: same event as its pair").
PAIRS = [
    ("min.json", "min_subject_null.json"),
    ("json_data.json", "base64_json_data.json"),
    ("xml_data.json", "base64_xml_data.json"),
    ("text_data.json", "base64_text_data.json"),
    ("json_data_with_ext.json", "base64_json_data_with_ext.json"),
]
#: Not spec-mandated; sdk-java accepts them by rewriting the event. We reject them.
SDK_SPECIFIC = ("json_data_with_ext_upper_case.json", "json_data_with_ext_invalid.json")


def _files() -> list[Path]:
    return sorted(VECTORS.glob("v*/*.json"))


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


VALID = [p for p in _files() if not p.name.startswith("fail_") and p.name not in SDK_SPECIFIC]
FAILING = [p for p in _files() if p.name.startswith("fail_")]
SPECIFIC = [p for p in _files() if p.name in SDK_SPECIFIC]
PAIR_CASES = [(VECTORS / v / a, VECTORS / v / b) for v in ("v1", "v03") for a, b in PAIRS]


def test_the_vector_set_is_complete() -> None:
    """Every file has a documented outcome (so a new upstream file is not skipped)."""
    assert len(_files()) == 31
    assert len(VALID) + len(FAILING) + len(SPECIFIC) == 31
    assert len(FAILING) == 4
    assert len(SPECIFIC) == 4
    for a, b in PAIR_CASES:
        assert a.exists()
        assert b.exists()


def _body(path: Path) -> bytes:
    return path.read_bytes()


def _setup(url: str) -> str:
    return manifests(broker_doc(), trigger_doc("all", f"{url}/all"))


def expected_event(path: Path) -> tuple[dict[str, str], bytes | None]:
    """What a file means: its attributes (``null`` = absent) as canonical strings, and
    its data bytes (JSON data as compact JSON text, base64 decoded)."""
    import base64

    obj: dict[str, Any] = json.loads(_body(path))
    attributes = {
        k: canonical(v)
        for k, v in obj.items()
        if k not in ("data", "data_base64") and v is not None
    }
    data: bytes | None = None
    if obj.get("data_base64") is not None:
        data = base64.b64decode(obj["data_base64"])
    elif "data" in obj:
        if attributes.pop("datacontentencoding", None) == "base64":
            data = base64.b64decode(obj["data"])
        elif isinstance(obj["data"], str) and "json" not in attributes.get(
            "datacontenttype", "application/json"
        ):
            data = obj["data"].encode("utf-8")
        else:
            data = compact_json(obj["data"])
    return attributes, data


async def _deliver(
    running_url: str, subscriber: RecordingSubscriber, body: bytes, http: aiohttp.ClientSession
) -> WireEvent:
    before = len(subscriber.received)
    status, answer = await post(http, running_url, STRUCTURED, body)
    assert status == 202, answer
    await subscriber.wait_for(lambda rs: len(rs) > before)
    return read_delivery(subscriber.received[before])


@pytest.mark.parametrize("path", VALID, ids=_id)
async def test_valid_vector_is_delivered_as_sent(
    path: Path, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    async with aiohttp.ClientSession() as http:
        got = await _deliver(broker_url(running), subscriber, _body(path), http)
    want_attributes, want_data = expected_event(path)
    assert got.mode == "binary"
    assert got.without_additions() == want_attributes
    assert got.attributes.keys() >= BROKER_ADDED
    assert same_data(want_attributes.get("datacontenttype"), got.data, want_data)


@pytest.mark.parametrize(
    ("left", "right"),
    PAIR_CASES,
    ids=[f"{a.parent.name}-{a.stem}=={b.stem}" for a, b in PAIR_CASES],
)
async def test_equal_pairs_decode_equal(
    left: Path, right: Path, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    async with aiohttp.ClientSession() as http:
        a = await _deliver(broker_url(running), subscriber, _body(left), http)
        b = await _deliver(broker_url(running), subscriber, _body(right), http)
    assert a.without_additions() == b.without_additions()
    assert same_data(a.attributes.get("datacontenttype"), a.data, b.data)


def test_numeric_ext_keeps_integer_and_string_extensions() -> None:
    """``numeric_ext.json``: ``integer`` is an Integer, ``decimal``/``float``/``long``
    are Strings (checked on the parsed event, where the types still differ)."""
    from eventing.codec.jsonformat import parse_structured

    event = parse_structured((VECTORS / "v1" / "numeric_ext.json").read_bytes())
    assert event.attributes["integer"] == 42
    assert event.attributes["decimal"] == "42.42"
    assert event.attributes["float"] == "4.2"
    assert event.attributes["long"] == "4200"


@pytest.mark.parametrize("path", FAILING + SPECIFIC, ids=_id)
async def test_invalid_vector_is_rejected_and_nothing_stored(
    path: Path, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), STRUCTURED, _body(path))
    assert status == 400, answer
    assert "error" in json.loads(answer)
    assert_nothing_stored(running)
    assert subscriber.received == []
