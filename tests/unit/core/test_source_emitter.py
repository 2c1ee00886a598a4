"""The emit a source is given (``eventing.app.emitter``): it stamps and marks events
for deduplication, and recalls the ids its durable broker remembers storing for a
source, across a restart, which is what a KafkaSource skips by
(``sources.kafka.positions``)."""

from __future__ import annotations

from pathlib import Path

from eventing.app.dedup_config import SourceDedup
from eventing.app.emitter import SourceEmitter
from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.events import Event
from eventing.sourcing import Recall

SOURCE = "/apis/v1/namespaces/ns/kafkasources/src#orders"
SCOPE = "KafkaSource/ns/src"


def broker_on(settings: SqliteSettings) -> EmbeddedBroker:
    broker = EmbeddedBroker("ns/b", "Embedded", SharedStore(SqliteStore(settings)))
    broker.subscribe("ns/t", lambda attributes: None)
    broker.dedup.scope(SCOPE)
    return broker


def record_event(offset: int, *, keyed: bool) -> Event:
    event = Event(
        {
            "specversion": "1.0",
            "id": f"partition:0/offset:{offset}",
            "source": SOURCE,
            "type": "dev.knative.kafka.event",
        }
    )
    event.dedup = None if keyed else ""
    return event


async def test_recall_lists_the_keyed_ids_stored_before_a_restart(tmp_path: Path) -> None:
    settings = SqliteSettings(tmp_path / "events.db", synchronous="NORMAL")
    broker = broker_on(settings)
    await broker.open()
    emit = SourceEmitter(broker, "ns/b", SourceDedup(SCOPE), lambda: None)
    assert isinstance(emit, Recall)
    await emit([record_event(o, keyed=o == 2) for o in range(3)])
    await emit([record_event(o, keyed=o == 4) for o in range(3, 5)])
    assert sorted(emit.stored_ids(SOURCE) or []) == [
        "partition:0/offset:2",
        "partition:0/offset:4",
    ]
    assert broker.store.pending_count("ns/t") == 5
    await broker.close()

    again = broker_on(settings)
    await again.open()
    try:
        recalled = SourceEmitter(again, "ns/b", SourceDedup(SCOPE), lambda: None)
        assert sorted(recalled.stored_ids(SOURCE) or []) == [
            "partition:0/offset:2",
            "partition:0/offset:4",
        ]
        assert recalled.stored_ids("/another#orders") == []
        # without deduplication there is nothing to recall by
        assert (
            SourceEmitter(again, "ns/b", SourceDedup(""), lambda: None).stored_ids(SOURCE) is None
        )
        again.dedup.enabled = False
        assert recalled.stored_ids(SOURCE) is None
        again.dedup.enabled = True
        assert recalled.stored_ids("/x" * 300) is None  # its keys would be digests
    finally:
        await again.close()


async def test_emit_stamps_marks_and_tells_the_tap(tmp_path: Path) -> None:
    settings = SqliteSettings(tmp_path / "events.db", synchronous="NORMAL")
    broker = broker_on(settings)
    await broker.open()
    told: list[tuple[str, int]] = []
    try:
        emit = SourceEmitter(
            broker, "ns/b", SourceDedup(SCOPE), lambda: lambda b, e: told.append((b, len(e)))
        )
        events = [record_event(0, keyed=True), record_event(1, keyed=False)]
        await emit(events)
        assert [e.dedup for e in events] == [SCOPE, ""]
        assert all("knativearrivaltime" in e.attributes for e in events)
        assert events[0].attributes["knativebrokerttl"] == "255"
        assert told == [("ns/b", 2)]
    finally:
        await broker.close()
