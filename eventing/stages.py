"""Where an event's latency goes, stage by stage: a debugging and benchmarking aid,
off unless ``EVENTING_STAGE_TIMES`` names a directory.

When on, every process (the main one and each ingress worker) records, for each event
that carries a ``sentat`` extension (seconds since the epoch, stamped by a load
generator such as ``bench/bench_pipeline.py``'s latency phase), how long after that
moment the event passed each stage, and how late the process's event loop ran a
1 ms timer (its stalls: GC pauses, long callbacks, GIL waits behind the store's
threads; uvloop's timers have a 1 ms granularity, so lags below that are its own),
and each garbage collection's pause by generation. At exit each process writes its
samples to ``DIR/<role>-<pid>.json``; the bench prints percentiles per stage. Events
without ``sentat`` are not recorded, so the cost when on is a dictionary look-up per
stage, and when off one global check.

Why cumulative times since ``sentat`` and not durations per stage: every stage is
then measured against one clock reading taken outside the system, and a stage's
share of the tail shows as the jump in p99 from the stage before it.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from eventing.events import Event

ENV = "EVENTING_STAGE_TIMES"
DIRECTORY = os.environ.get(ENV, "")
ON = bool(DIRECTORY)
"""Checked by callers before :func:`mark`, so the hot path pays one global look-up."""

MAX_SAMPLES = 500_000
"""Per stage and process: bounded memory however long a process runs with it on."""

LOOP_TICK = 0.001

_samples: dict[str, list[float]] = {}
_started: set[str] = set()


def mark(stage: str, event: Event) -> None:
    """Record now - ``sentat`` of ``event`` under ``stage`` (events without it: no)."""
    sent = event.attributes.get("sentat")
    if sent is None:
        return
    try:
        elapsed = time.time() - float(sent)
    except (TypeError, ValueError):
        return
    samples = _samples.setdefault(stage, [])
    if len(samples) < MAX_SAMPLES:
        samples.append(elapsed)


def start(role: str) -> None:
    """In a process that has just started its loop: watch the loop's lag and write the
    samples at exit. Does nothing unless on; once per role."""
    if not ON or role in _started:
        return
    _started.add(role)
    loop = asyncio.get_running_loop()
    lags = _samples.setdefault("loop lag", [])

    def tick(expected: float) -> None:
        now = time.perf_counter()
        if len(lags) < MAX_SAMPLES:
            lags.append(max(0.0, now - expected))
        loop.call_later(LOOP_TICK, tick, now + LOOP_TICK)

    loop.call_later(LOOP_TICK, tick, time.perf_counter() + LOOP_TICK)
    gc.callbacks.append(_gc_timer())
    atexit.register(dump, role)


def _gc_timer() -> Callable[[str, dict[str, int]], None]:
    """A ``gc.callbacks`` entry recording each collection's pause by generation."""
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        samples = _samples.setdefault(f"gc pause gen{info.get('generation', '?')}", [])
        if len(samples) < MAX_SAMPLES:
            samples.append(time.perf_counter() - began[0])

    return callback


def dump(role: str) -> None:
    """Write this process's samples (and forget them)."""
    if not ON or not _samples:
        return
    path = Path(DIRECTORY) / f"{role}-{os.getpid()}.json"
    path.write_text(json.dumps(_samples))
    _samples.clear()
