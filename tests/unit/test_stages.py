"""The per-stage latency recorder (a debugging and benchmarking aid): events with a
``sentat`` extension are recorded per stage, others are not; the loop's lag and the
collector's pauses are recorded once started; each process writes its samples at exit."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path

import pytest

from eventing import stages
from eventing.events import Event


def _event(**extra: str) -> Event:
    return Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", **extra})


async def _run_loop_a_while() -> None:
    stages.start("test")
    deadline = time.monotonic() + 10
    while not stages._samples.get("loop lag") and time.monotonic() < deadline:  # noqa: ASYNC110 (the timer under test)
        await asyncio.sleep(0.005)


def test_records_stages_loop_lag_and_gc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "DIRECTORY", str(tmp_path))
    monkeypatch.setattr(stages, "ON", True)
    monkeypatch.setattr(stages, "_samples", {})
    monkeypatch.setattr(stages, "_started", set())
    callbacks = list(gc.callbacks)
    try:
        asyncio.run(_run_loop_a_while())
        stages.mark("stored", _event(sentat=repr(time.time() - 0.5)))
        stages.mark("stored", _event())  # no sentat: not recorded
        stages.mark("stored", _event(sentat="not a number"))
        gc.collect()
        stages.dump("test")
    finally:
        gc.callbacks[:] = callbacks
    (written,) = tmp_path.glob("test-*.json")
    samples = json.loads(written.read_text())
    assert len(samples["stored"]) == 1
    assert 0.5 <= samples["stored"][0] < 60
    assert samples["loop lag"]
    assert samples["gc pause gen2"]
