"""cloudevents/conformance replayed against the ingress, checked at a real subscriber.

* ``yaml/**``: every event is sent in binary *and* structured mode (whatever its
  ``Mode`` says, so both modes cover every event) and must arrive, delivered in
  binary mode and (through a ``delivery.format: json`` trigger) in structured mode,
  with the YAML's attributes and data (``diff --ignore-additions``: the broker's own
  extensions may be added, nothing may change or go missing). ``TransportExtensions``
  are HTTP headers of the sending request, not event attributes.
* ``features/http-protocol-binding.feature``: each scenario outline row is replayed as
  the raw HTTP request it contains (aimed at our ingress, ``Content-Length``
  recomputed) and the delivered attributes and JSON data are checked.

Loading traps and the trailing-newline rule are explained in
:mod:`tests.support.conformance`.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
import yaml

from tests.conftest import SystemFactory
from tests.support.conformance import (
    CONFORMANCE,
    Scenario,
    YamlEvent,
    binary_request,
    extension_value,
    http_request_for,
    load_yaml_events,
    parse_feature,
    structured_request,
)
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
    WireEvent,
    compact_json,
    percent_encode,
    raw_exchange,
    read_delivery,
    same_data,
)

EVENTS = load_yaml_events()
SCENARIOS = parse_feature(CONFORMANCE / "features" / "http-protocol-binding.feature")


def _setup(url: str) -> str:
    return manifests(
        broker_doc(),
        trigger_doc("binary", f"{url}/binary"),
        trigger_doc("structured", f"{url}/structured", delivery={"format": "json"}),
    )


def test_yaml_traps_are_real() -> None:
    """Why the events are loaded with ``BaseLoader``: ``safe_load`` turns the
    unquoted specversion into a float and the time into a datetime, and the ``|``
    block scalars end with a newline."""
    text = (CONFORMANCE / "yaml" / "v1.yaml").read_text()
    first = next(iter(yaml.safe_load_all(text)))
    assert first["ContextAttributes"]["specversion"] == 1.0
    assert not isinstance(first["ContextAttributes"]["time"], str)
    ext = first["ContextAttributes"]["Extensions"]["comexampleextension2"]
    assert ext == '{"othervalue": 5}\n'
    assert first["Data"].endswith("\n")
    assert extension_value(ext) == '{"othervalue": 5}'


def test_every_yaml_event_is_loaded() -> None:
    assert len(EVENTS) == 15
    assert {e.attributes["specversion"] for e in EVENTS} == {"1.0", "0.3"}
    assert {e.mode for e in EVENTS} == {None, "binary", "structured"}


def _check(got: WireEvent, event: YamlEvent, sent_structured: bool) -> None:
    attributes = got.without_additions()
    # Ignore additions: an event sent in structured mode with JSON data and no
    # datacontenttype is application/json by the JSON format's rule, and the broker
    # makes that explicit.
    if (
        event.datacontenttype is None
        and attributes.get("datacontenttype") == ("application/json")
        and sent_structured
    ):
        del attributes["datacontenttype"]
    assert attributes == event.attributes
    content_type = event.datacontenttype or ("application/json" if sent_structured else None)
    if sent_structured or got.mode == "structured":
        # The JSON format carries JSON data as a JSON value: compare values.
        assert same_data(content_type, got.data, event.data_bytes)
    else:
        assert got.data == event.data_bytes  # binary in, binary out: the exact bytes


@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize("event", EVENTS, ids=[e.origin for e in EVENTS])
async def test_yaml_event_arrives_as_written(
    event: YamlEvent, mode: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    headers, body = binary_request(event) if mode == "binary" else structured_request(event)
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), headers, body)
    assert status == 202, answer
    await subscriber.wait_count(1, "/binary")
    await subscriber.wait_count(1, "/structured")
    by_path = {r.path: read_delivery(r) for r in subscriber.received}
    assert by_path["/binary"].mode == "binary"
    assert by_path["/structured"].mode == "structured"
    for got in by_path.values():
        _check(got, event, sent_structured=mode == "structured")
    # The transport extension was a header of the request, not an attribute.
    for name in event.transport:
        assert name not in by_path["/binary"].attributes


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_extension_with_a_raw_newline_is_rejected(
    mode: str, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    """The YAML's ``comexampleextension2`` exactly as loaded (with the block scalar's
    newline) is not a valid CloudEvents String: 400, and nothing stored."""
    source = next(e for e in EVENTS if e.origin == "v1.yaml#0")
    raw = '{"othervalue": 5}\n'
    event = YamlEvent(
        source.origin,
        source.mode,
        {**source.attributes, "comexampleextension2": raw},
        source.transport,
        source.data,
    )
    running = await system(_setup(subscriber.url))
    headers, body = binary_request(event) if mode == "binary" else structured_request(event)
    if mode == "binary":
        assert headers["ce-comexampleextension2"] == percent_encode(raw)
        assert headers["ce-comexampleextension2"].endswith("%0A")
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, broker_url(running), headers, body)
    assert status == 400, answer
    assert "comexampleextension2" in json.loads(answer)["error"]
    assert_nothing_stored(running)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_http_feature_scenario(
    scenario: Scenario, system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(_setup(subscriber.url))
    response = await raw_exchange(
        broker_url(running), http_request_for(scenario, broker_url(running))
    )
    assert response is not None
    assert response.status == 202, response.body
    await subscriber.wait_count(1, "/binary")
    await subscriber.wait_count(1, "/structured")
    for received in subscriber.received:
        got = read_delivery(received)
        attributes = got.without_additions()
        assert attributes == scenario.attributes, received.path
        assert got.data is not None
        assert json.loads(got.data) == scenario.data_json
        assert same_data("application/json", got.data, compact_json(scenario.data_json))


def test_feature_outlines_expand_to_four_scenarios() -> None:
    assert [s.examples["contentType"] for s in SCENARIOS] == [
        "application/json",
        "application/json; charset=utf-8",
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
    ]
    for scenario in SCENARIOS:
        assert "<" not in scenario.request
        assert set(scenario.attributes) == {
            "id",
            "specversion",
            "type",
            "source",
            "time",
            "datacontenttype",
        }
