"""PingSource: the event of a run, stable ids, the run loop under a fake clock, the
missed-run policies across a restart, and retries when the broker refuses."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eventing.errors import ConfigError
from eventing.events import validate
from sources.ping import adapter as ping
from tests.unit.webhooks.support import BROKER_SINK, FakeClock, RecordingEmit, Stop, utc

SOURCE = "/apis/v1/namespaces/default/pingsources/tick"


def make_source(**spec: Any) -> ping.PingSource:
    return ping.PingSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1",
            "kind": "PingSource",
            "metadata": {"name": "tick"},
            "spec": {"sink": BROKER_SINK, **spec},
        }
    )


def make_adapter(tmp_path: Path, clock: FakeClock, **spec: Any) -> ping.PingAdapter:
    return ping.build(
        make_source(**spec), state_dir=tmp_path, now=clock.now, sleep_until=clock.sleep_until
    )


async def run_until_stopped(adapter: ping.PingAdapter, emit: RecordingEmit) -> None:
    with pytest.raises(Stop):
        await adapter.run(emit)


def write_state(tmp_path: Path, last: str) -> None:
    state = tmp_path / "pingsources" / "default" / "tick.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"lastRun": last}))


def test_event_of_a_run() -> None:
    source = make_source(
        contentType="application/json",
        data='{"hello": "world"}',
        ceOverrides={"extensions": {"team": "ops"}},
    )
    event = ping.make_event(source, utc(2024, 5, 1, 9, 30))
    assert event.attributes == {
        "specversion": "1.0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SOURCE}#2024-05-01T09:30:00Z")),
        "source": SOURCE,
        "type": "dev.knative.sources.ping",
        "time": "2024-05-01T09:30:00Z",
        "datacontenttype": "application/json",
        "team": "ops",
    }
    assert event.data == b'{"hello": "world"}'  # as written, not re-encoded
    validate(event.attributes)


def test_ids_are_stable_per_run_and_differ_between_runs() -> None:
    source = make_source()
    first = ping.make_event(source, utc(2024, 5, 1, 9, 30))
    again = ping.make_event(source, utc(2024, 5, 1, 9, 30))
    second = ping.make_event(source, utc(2024, 5, 1, 9, 31))
    other = ping.make_event(
        make_source().model_copy(
            update={"metadata": source.metadata.model_copy(update={"name": "tock"})}
        ),
        utc(2024, 5, 1, 9, 30),
    )
    assert first.id == again.id
    assert len({first.id, second.id, other.id}) == 3


@pytest.mark.parametrize(
    ("spec", "data", "content_type"),
    [
        ({}, None, None),
        ({"data": "plain text"}, b"plain text", None),
        ({"data": "hi", "contentType": "text/plain"}, b"hi", "text/plain"),
        (
            {
                "dataBase64": base64.b64encode(b"\x00\xffbin").decode(),
                "contentType": "application/octet-stream",
            },
            b"\x00\xffbin",
            "application/octet-stream",
        ),
        ({"contentType": "application/json"}, None, None),
    ],
)
def test_data_fields(spec: dict[str, Any], data: bytes | None, content_type: str | None) -> None:
    event = ping.make_event(make_source(**spec), utc(2024, 1, 1))
    assert event.data == data
    assert event.datacontenttype == content_type


async def test_runs_on_schedule_with_the_scheduled_time(tmp_path: Path) -> None:
    clock = FakeClock(utc(2024, 5, 1, 10, 0, 30), max_sleeps=3)
    emit = RecordingEmit()
    adapter = make_adapter(tmp_path, clock)
    await run_until_stopped(adapter, emit)
    assert [e.attributes["time"] for e in emit.events] == [
        "2024-05-01T10:01:00Z",
        "2024-05-01T10:02:00Z",
        "2024-05-01T10:03:00Z",
    ]
    assert clock.sleeps == [utc(2024, 5, 1, 10, 1), utc(2024, 5, 1, 10, 2), utc(2024, 5, 1, 10, 3)]
    assert adapter.health.state == "connected"
    assert adapter.health.emitted == 3
    state = json.loads((tmp_path / "pingsources/default/tick.json").read_text())
    assert state["lastRun"] == "2024-05-01T10:03:00Z"


async def test_time_zone_schedule_fires_at_local_time(tmp_path: Path) -> None:
    clock = FakeClock(utc(2024, 7, 1, 0, 0), max_sleeps=1)
    emit = RecordingEmit()
    await run_until_stopped(
        make_adapter(tmp_path, clock, schedule="0 9 * * *", timezone="Europe/Berlin"), emit
    )
    assert [e.attributes["time"] for e in emit.events] == ["2024-07-01T07:00:00Z"]


async def test_missed_runs_are_skipped_by_default(tmp_path: Path) -> None:
    write_state(tmp_path, "2024-05-01T10:00:00Z")
    clock = FakeClock(utc(2024, 5, 1, 10, 5, 30), max_sleeps=1)
    emit = RecordingEmit()
    adapter = make_adapter(tmp_path, clock)
    await run_until_stopped(adapter, emit)
    assert [e.attributes["time"] for e in emit.events] == ["2024-05-01T10:06:00Z"]
    assert adapter.drops["missed_run_skipped"] == 5


async def test_catch_up_fires_missed_runs_in_order_then_continues(tmp_path: Path) -> None:
    write_state(tmp_path, "2024-05-01T10:00:00Z")
    clock = FakeClock(utc(2024, 5, 1, 10, 5, 30), max_sleeps=1)
    emit = RecordingEmit()
    await run_until_stopped(make_adapter(tmp_path, clock, missedRuns="catchUp"), emit)
    assert [e.attributes["time"] for e in emit.events] == [
        f"2024-05-01T10:0{m}:00Z" for m in range(1, 7)
    ]


@pytest.mark.parametrize(
    ("bounds", "fired", "dropped"),
    [({"maxCatchUpRuns": 3}, [3, 4, 5], 2), ({"catchUpWindow": "PT2M"}, [4, 5], 3)],
)
async def test_catch_up_is_bounded(
    tmp_path: Path, bounds: dict[str, Any], fired: list[int], dropped: int
) -> None:
    write_state(tmp_path, "2024-05-01T10:00:00Z")
    clock = FakeClock(utc(2024, 5, 1, 10, 5, 30), max_sleeps=0)
    emit = RecordingEmit()
    adapter = make_adapter(tmp_path, clock, missedRuns="catchUp", **bounds)
    await run_until_stopped(adapter, emit)
    assert [e.attributes["time"] for e in emit.events] == [f"2024-05-01T10:0{m}:00Z" for m in fired]
    assert adapter.drops["missed_run_not_caught_up"] == dropped


async def test_catch_up_without_state_starts_now(tmp_path: Path) -> None:
    clock = FakeClock(utc(2024, 5, 1, 10, 5, 30), max_sleeps=0)
    emit = RecordingEmit()
    await run_until_stopped(make_adapter(tmp_path, clock, missedRuns="catchUp"), emit)
    assert emit.events == []


async def test_restart_resumes_after_the_last_run_with_the_same_ids(tmp_path: Path) -> None:
    clock = FakeClock(utc(2024, 5, 1, 10, 0, 30), max_sleeps=2)
    first = RecordingEmit()
    await run_until_stopped(make_adapter(tmp_path, clock, missedRuns="catchUp"), first)
    # Down for three minutes; the restarted source catches up 10:03 and 10:04.
    later = FakeClock(utc(2024, 5, 1, 10, 4, 10), max_sleeps=0)
    second = RecordingEmit()
    await run_until_stopped(make_adapter(tmp_path, later, missedRuns="catchUp"), second)
    times = [e.attributes["time"] for e in first.events + second.events]
    assert times == [f"2024-05-01T10:0{m}:00Z" for m in range(1, 5)]
    expected = ping.make_event(make_source(), utc(2024, 5, 1, 10, 3)).id
    assert second.events[0].id == expected


async def test_store_error_is_retried_with_the_same_id(tmp_path: Path) -> None:
    clock = FakeClock(utc(2024, 5, 1, 10, 0, 30), max_sleeps=3)
    emit = RecordingEmit(fail=2)
    adapter = make_adapter(tmp_path, clock)
    await run_until_stopped(adapter, emit)
    assert emit.calls == 3
    assert [e.attributes["time"] for e in emit.events] == ["2024-05-01T10:01:00Z"]
    # Backoff 0.5 s then 1 s after the failures, from the run time.
    assert clock.sleeps[1:] == [
        utc(2024, 5, 1, 10, 1) + timedelta(seconds=0.5),
        utc(2024, 5, 1, 10, 1, 1, 500000),
    ]
    assert adapter.health.failed == 2
    assert adapter.health.emitted == 1


async def test_skip_gives_up_a_run_when_the_next_one_is_due(tmp_path: Path) -> None:
    clock = FakeClock(utc(2024, 5, 1, 10, 0, 30), max_sleeps=8)
    emit = RecordingEmit(fail=7)  # 0.5+1+2+4+8+16 s of retries pass 10:01's minute
    adapter = make_adapter(tmp_path, clock)
    await run_until_stopped(adapter, emit)
    assert adapter.drops["store_failed"] == 1
    assert [e.attributes["time"] for e in emit.events] == ["2024-05-01T10:02:00Z"]


async def test_catch_up_keeps_a_failed_run_due(tmp_path: Path) -> None:
    clock = FakeClock(utc(2024, 5, 1, 10, 0, 30), max_sleeps=9)
    emit = RecordingEmit(fail=7)
    adapter = make_adapter(tmp_path, clock, missedRuns="catchUp")
    await run_until_stopped(adapter, emit)
    assert adapter.drops["store_failed"] == 0
    times = [e.attributes["time"] for e in emit.events]
    assert times[:2] == ["2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"]


def test_unreadable_state_starts_fresh(tmp_path: Path) -> None:
    write_state(tmp_path, "not a time")
    adapter = make_adapter(tmp_path, FakeClock(utc(2024, 1, 1)))
    assert adapter._load() is None


def test_build_needs_a_state_dir() -> None:
    with pytest.raises(ConfigError, match="state_dir"):
        ping.build(make_source())
