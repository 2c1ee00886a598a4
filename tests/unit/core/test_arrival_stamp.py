"""The arrival time of an event read back from the store (``knativearrivaltime``
parsed once per event, and once per run of events sharing it)."""

from __future__ import annotations

from datetime import UTC, datetime

from eventing.delivery.stamps import arrival
from eventing.events import Event


def read_back(text: str) -> Event:
    return Event(
        {"specversion": "1.0", "id": "e", "source": "/s", "type": "t", "knativearrivaltime": text}
    )


def test_events_sharing_an_arrival_time_and_not() -> None:
    first = "2026-12-05T02:20:11.123456Z"
    second = "2026-12-05T02:20:12.5Z"
    expected = datetime(2026, 12, 5, 2, 20, 11, 123456, tzinfo=UTC).timestamp()
    for text, want in [
        (first, expected),
        (first, expected),  # the same text again (remembered)
        (second, expected + 1.376544),
        (first, expected),
        ("2026-12-05T02:20:11+01:00", expected - 3600.123456),
    ]:
        event = read_back("".join(text))  # a distinct string, as decoded from a row
        got = arrival(event)
        assert got is not None
        assert abs(got - want) < 1e-6
        assert event.arrived == got


def test_no_or_bad_arrival_time() -> None:
    assert arrival(read_back("yesterday")) is None
    event = read_back("2026-12-05T02:20:11.123456Z")
    del event.attributes["knativearrivaltime"]
    assert arrival(event) is None
