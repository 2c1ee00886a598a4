"""Both stores behave the same: exact per-trigger backlog, acks, dead letters, bounds,
monotonic sequence numbers; the SQLite store also survives a reopen."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.memory_store import MemoryStore
from eventing.broker.sqlite_rows import decode, encode
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.store import Routed, Store
from eventing.errors import StoreFullError
from eventing.events import AttributeValue, Event

StoreMaker = Callable[..., Store]


def event(n: int, data: bytes | None = b"x") -> Event:
    return Event({"specversion": "1.0", "id": f"e{n}", "source": "/s", "type": "t"}, data)


@pytest.fixture(params=["sqlite", "memory"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreMaker]:
    opened: list[Store] = []

    def make(**bounds: int) -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(SqliteSettings(tmp_path / "s.db", **bounds))  # type: ignore[arg-type]
        else:
            store = MemoryStore(**bounds)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def test_backlog_is_exact_per_trigger(make_store: StoreMaker) -> None:
    store = make_store()
    await store.open(["a", "b"])
    events = [event(i) for i in range(5)]
    await store.append(
        "br", [Routed(e, ("a", "b") if i % 2 else ("a",)) for i, e in enumerate(events)]
    )
    assert (store.pending_count("a"), store.pending_count("b")) == (5, 2)
    await store.ack("a", [events[0].seq, events[1].seq])
    assert (store.pending_count("a"), store.pending_count("b")) == (3, 2)
    pending = await store.load_pending("a", 0, 10)
    assert [e.id for e in pending] == ["e2", "e3", "e4"]
    assert store.stats().events == 4  # e0 gone; e1 still pending for b


async def test_sequence_numbers_never_repeat(make_store: StoreMaker) -> None:
    store = make_store()
    await store.open(["a"])
    first = event(1)
    await store.append("br", [Routed(first, ("a",))])
    await store.ack("a", [first.seq])
    second = event(2)
    await store.append("br", [Routed(second, ("a",))])
    assert second.seq > first.seq


async def test_dead_letter_moves_the_event_atomically(make_store: StoreMaker) -> None:
    store = make_store()
    await store.open(["a"])
    e = event(1, b"payload")
    await store.append("br", [Routed(e, ("a",))])
    await store.dead_letter("br", "a", e, attempts=3, reason="HTTP 500", status=500)
    assert store.pending_count("a") == 0
    [dl] = await store.list_dead_letters("a", 10)
    assert (dl.event.id, dl.event.data, dl.attempts, dl.status) == ("e1", b"payload", 3, 500)
    assert store.stats().dead_letters == {"a": 1}
    assert await store.delete_dead_letters([dl.id]) == 1
    assert await store.list_dead_letters(None, 10) == []


async def test_full_store_rejects_and_never_evicts(make_store: StoreMaker) -> None:
    store = make_store(max_events=3)
    await store.open(["a"])
    kept = [event(i) for i in range(3)]
    await store.append("br", [Routed(e, ("a",)) for e in kept])
    with pytest.raises(StoreFullError):
        await store.append("br", [Routed(event(9), ("a",))])
    assert [e.id for e in await store.load_pending("a", 0, 10)] == ["e0", "e1", "e2"]


async def test_sqlite_reopen_recovers_pending_and_forgets_removed_triggers(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(SqliteSettings(path))
    await store.open(["a", "b"])
    await store.append("br", [Routed(event(1), ("a", "b")), Routed(event(2), ("b",))])
    await store.close()
    again = SqliteStore(SqliteSettings(path))
    await again.open(["a"])  # trigger b was removed from the manifests
    try:
        assert again.pending_count("a") == 1
        assert again.pending_count("b") == 0
        assert again.stats().events == 1
        [recovered] = await again.load_pending("a", 0, 10)
        assert recovered.id == "e1"
        assert recovered.data == b"x"
    finally:
        await again.close()


async def test_broker_routes_once_and_subscription_pages_from_disk(tmp_path: Path) -> None:
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    broker = EmbeddedBroker("ns/b", "Embedded", SharedStore(store))
    sub_a = broker.subscribe("a", lambda attrs: None if attrs["type"] == "t" else "filtered")
    sub_b = broker.subscribe("b", lambda attrs: "filtered")
    await broker.open()
    try:
        await broker.publish([event(i) for i in range(600)])  # more than a page and a buffer
        assert await sub_a.backlog() == 600
        assert sub_b.cached_backlog() == 0
        seen = [(await sub_a.get()).event.id for _ in range(600)]
        assert seen == [f"e{i}" for i in range(600)]
        assert broker.drops()[("b", "filtered")] == 600
    finally:
        await broker.close()


async def test_attributes_read_back_as_written(tmp_path: Path) -> None:
    """The writer's JSON encoder gives what ``json.dumps`` would (types, escapes)."""
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": 'é\u2028"\\/\x7f',
        "source": "/s",
        "type": "t",
        "count": -(2**31),
        "flag": True,
        "off": False,
        "emoji": "\U0001f600",
    }
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    await store.open(["a"])
    try:
        await store.append("br", [Routed(Event(dict(attributes), b"d"), ("a",))])
        (back,) = await store.load_pending("a", 0, 10)
        assert back.attributes == attributes
        assert encode(attributes) == json.dumps(attributes, separators=(",", ":"))
    finally:
        await store.close()


@pytest.mark.parametrize(
    "text",
    [
        '{"id":"e1","n":-3,"f":true,"u":"\\u00e9\\ud83d\\ude00"}',
        '{"id": "e1", "n": 2}',  # spaces (json.dumps' default separators)
        ' {"id":"e1"} ',
        "{}",
    ],
)
def test_read_back_decoding_is_json_loads(text: str) -> None:
    """The reader's decoder gives what ``json.loads`` gives, whitespace and all."""
    assert decode(text) == json.loads(text)


@pytest.mark.parametrize("text", ['{"id":"e1"}x', '{"id":', "", "nope", '{"a":1}{"b":2}'])
def test_read_back_decoding_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        decode(text)


@pytest.mark.parametrize("count", [3, 20])  # row by row, and one statement per run
async def test_dedup_keys_are_kept_and_forgotten(tmp_path: Path, count: int) -> None:
    odd = ['é\u2028"\\', "\x01", "\U0001f600", "x" * 300]
    ids = [f"{odd[i % len(odd)]}-{i}" for i in range(count)]
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    await store.open(["a"])
    try:
        seen = [("kafka", "/src", i, 1764844800.25) for i in ids]
        other = [("ingress", f"/s{n}", "same", 1764844801.5) for n in range(count)]
        await store.append("br", [], seen=seen + other)
        assert sorted(await store.load_seen("br")) == sorted(seen + other)
        assert await store.load_seen("other-broker") == []
        forget = [("kafka", "/src", i) for i in ids[: count // 2]]
        await store.append("br", [], forget=forget + [(s, src, i) for s, src, i, _ in other])
        assert sorted(await store.load_seen("br")) == sorted(seen[count // 2 :])
    finally:
        await store.close()


@pytest.mark.parametrize("count", [1, 63, 64, 65, 200])  # chunks of 64 and the remainder
async def test_every_event_of_a_large_append_is_stored_in_order(tmp_path: Path, count: int) -> None:
    datas: list[bytes | None] = [b"x", None, b"", b"\x00\xff"]
    events = [event(i, datas[i % len(datas)]) for i in range(count)]
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    await store.open(["a"])
    try:
        await store.append("br", [Routed(e, ("a",)) for e in events])
        back = await store.load_pending("a", 0, 1000)
        assert [(e.id, e.data, e.seq) for e in back] == [(e.id, e.data, e.seq) for e in events]
        assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + count))
        assert store.stats().events == count
    finally:
        await store.close()


async def test_pages_by_range_and_by_list_read_the_same_rows(tmp_path: Path) -> None:
    """A page whose seqs are contiguous is read by a range of the key, another by the
    list of its seqs: either way exactly the trigger's pending events, in order."""
    store = SqliteStore(SqliteSettings(tmp_path / "s.db"))
    await store.open(["a", "b"])
    try:
        # 0-9 for a only (contiguous), then a/b alternating, then both.
        routed = [Routed(event(n), ("a",)) for n in range(10)]
        routed += [Routed(event(n), ("a",) if n % 2 else ("b",)) for n in range(10, 20)]
        routed += [Routed(event(n), ("a", "b")) for n in range(20, 25)]
        await store.append("br", routed)

        async def ids(trigger: str, after: int, limit: int) -> list[str]:
            return [e.id for e in await store.load_pending(trigger, after, limit)]

        assert await ids("a", 0, 10) == [f"e{n}" for n in range(10)]
        assert await ids("a", 10, 100) == [f"e{n}" for n in range(11, 20, 2)] + [
            f"e{n}" for n in range(20, 25)
        ]
        assert await ids("b", 0, 100) == [f"e{n}" for n in range(10, 20, 2)] + [
            f"e{n}" for n in range(20, 25)
        ]
        assert await ids("a", 20, 100) == [f"e{n}" for n in range(20, 25)]
        await store.ack("a", [3, 4])  # a gap: the list again
        assert await ids("a", 0, 6) == ["e0", "e1", "e4", "e5", "e6", "e7"]
    finally:
        await store.close()
