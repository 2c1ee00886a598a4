"""The tail fan-out never blocks ingest: a watcher that does not read loses events
(counted), the others and the publisher are unaffected."""

from __future__ import annotations

from collections.abc import Callable

from eventing.events import AttributeValue, Event
from eventing.ui.tap import Sized, Tap


def _events(n: int) -> list[Event]:
    return [
        Event({"specversion": "1.0", "id": f"e{i}", "source": "/t", "type": "t"}, b"xy")
        for i in range(n)
    ]


def test_a_full_watcher_drops_and_counts_without_blocking() -> None:
    tap = Tap(recent=5, max_watchers=2)
    with tap.watch(queue_size=3) as slow, tap.watch(queue_size=100) as fast:
        assert tap.full()
        tap.offer("default/default", _events(10))
        assert slow.queue.qsize() == 3
        assert slow.dropped == 7
        assert fast.queue.qsize() == 10
        assert fast.dropped == 0
        assert tap.dropped == 7
    assert not tap.watchers
    assert tap.entered == {"default/default": 10}


def test_recent_events_are_found_by_id_and_bounded() -> None:
    tap = Tap(recent=5)
    tap.offer("ns/a", _events(10))
    found = tap.find("e9")
    assert found is not None
    assert found.broker == "ns/a"
    assert found.data_bytes == 2
    assert tap.find("e9", broker="ns/b") is None
    assert tap.find("e0") is None  # only the last five are kept


def test_a_duplicate_is_shown_marked_but_not_counted_or_found_as_stored() -> None:
    """An event the broker's deduplication did not store (``Event.duplicate``) reaches
    the watchers marked, is not counted as entered (the dashboard's ingest rate), and
    ``find`` (``explain --id``) returns the stored copy, not it."""
    tap = Tap()
    stored, again = _events(1)[0], _events(1)[0]
    again.attributes["copy"] = "second"
    again.duplicate = True
    with tap.watch() as watcher:
        tap.offer("ns/a", [stored])
        tap.offer("ns/a", [again])
        marks = [watcher.queue.get_nowait()[4] for _ in range(2)]
    assert marks == [False, True]
    assert tap.entered == {"ns/a": 1}
    found = tap.find("e0")
    assert found is not None
    assert "copy" not in found.attributes
    assert not found.duplicate


def _sized(events: list[Event]) -> list[tuple[dict[str, AttributeValue], int]]:
    return [(dict(e.attributes), len(e.data or b"")) for e in events]


def test_an_ingress_workers_events_are_counted_now_and_decoded_only_when_looked_at() -> None:
    tap = Tap(recent=5)
    decoded: list[int] = []

    def later(events: list[Event]) -> Callable[[], Sized]:
        def items() -> list[tuple[dict[str, AttributeValue], int]]:
            decoded.append(len(events))
            return _sized(events)

        return items

    batches = _events(12)
    for start in range(0, 12, 3):
        tap.offer_later("ns/a", 3, later(batches[start : start + 3]))
    assert tap.entered == {"ns/a": 12}
    assert decoded == []  # nobody looked
    found = tap.find("e11")
    assert found is not None
    assert (found.broker, found.data_bytes) == ("ns/a", 2)
    assert tap.find("e0") is None  # about as many as recent keeps: older batches dropped
    assert tap.find("e11", broker="ns/b") is None


def test_an_ingress_workers_events_go_to_watchers_at_once_and_bad_ones_are_skipped() -> None:
    tap = Tap()
    events = _events(2)

    def bad() -> list[tuple[dict[str, AttributeValue], int]]:
        raise ValueError("undecodable")

    with tap.watch() as watcher:
        tap.offer_later("ns/a", 2, lambda: _sized(events))
        tap.offer_later("ns/a", 1, bad)
        assert watcher.queue.qsize() == 2
    tap.offer_later("ns/a", 1, bad)
    assert tap.find("nothing") is None
    assert tap.find("e1") is not None


def test_the_latest_of_a_worker_batch_and_a_main_process_offer_is_found() -> None:
    tap = Tap()
    first = _events(1)
    tap.offer("ns/main", first)
    tap.offer_later("ns/worker", 1, lambda: _sized(first))
    found = tap.find("e0")
    assert found is not None
    assert found.broker == "ns/worker"
