"""The log-structured dead-letter index of the server-backed classes."""

from __future__ import annotations

from eventing.broker.deadletter_log import (
    DeadLetterLog,
    id_base,
    new_meta,
    parse_meta,
    parse_tombstone,
    tombstone_headers,
)
from eventing.events import Event


def _event(i: int) -> Event:
    return Event({"specversion": "1.0", "id": str(i), "source": "/s", "type": "t"}, b"x")


def test_ids_are_stable_per_broker_and_apart_from_each_other() -> None:
    assert id_base("ns/a") == id_base("ns/a")
    assert id_base("ns/a") != id_base("ns/b")
    assert id_base("ns/a") > 10**12  # the embedded store counts from 1


def test_add_list_delete_and_tombstones() -> None:
    log = DeadLetterLog("ns/b")
    meta = new_meta("ns/t", 3, "HTTP 500", 500)
    parsed = parse_meta(meta.headers())
    assert parsed is not None
    assert (parsed.trigger, parsed.attempts, parsed.reason, parsed.status) == (
        "ns/t",
        3,
        "HTTP 500",
        500,
    )
    assert abs(parsed.failed_at - meta.failed_at) < 1e-5
    for position in range(5):
        log.add(position, _event(position), parsed)
    assert [d.event.id for d in log.list(None, 10)] == ["0", "1", "2", "3", "4"]
    assert log.depths() == {"ns/t": 5}
    first = log.id_of(0)
    assert log.get(first) is not None
    ids = parse_tombstone(tombstone_headers([first, log.id_of(1), 42]))
    assert log.delete(5, ids) == 2
    assert [d.event.id for d in log.list("ns/t", 10)] == ["2", "3", "4"]
    log.add(0, _event(0), meta)  # read again (another process's tail): stays deleted
    assert log.get(first) is None
    assert log.read_up_to == 5
    assert [d.event.id for d in log.list(None, 1, after_id=log.id_of(2))] == ["3"]


def test_index_is_bounded() -> None:
    log = DeadLetterLog("ns/b", max_kept=3)
    for position in range(5):
        log.add(position, _event(position), new_meta("ns/t", 1, "r", None))
    assert [d.event.id for d in log.list(None, 10)] == ["2", "3", "4"]
    assert log.evicted == 2
    assert log.depths() == {"ns/t": 3}
