"""A device fleet through the whole system (issue 15): 1,000 simulated devices, each on
its own connection to a private Mosquitto, publish QoS 1 at a steady rate; an
MqttSource in ``eventing run`` feeds a Broker and a Trigger to an HTTP subscriber.
Mid-run ``eventing`` is killed (``kill -9``) and started again, later Mosquitto is
restarted. Every message the server acknowledged to a device must reach the
subscriber, the source must end connected with nothing held and no stall, and the
eventing process's memory must stay flat over the last phase.

Not a timed test: each phase lasts until the fleet has had a given number of
messages confirmed, every wait has a deadline. Bounded by the settings below
(defaults: 1,000 devices, one message each per 5 s, 3 phases of ~20 s). For a longer
run: ``EVENTING_FLEET_SECONDS=300 pytest -s tests/integration/test_mqtt_fleet.py``
(``-s`` prints the summary).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.e2e_support import (
    manifests,
    mqtt_source,
    source_status,
    write_manifests,
)
from tests.integration.mqtt_support import (
    Fleet,
    PrivateMosquitto,
    raise_open_file_limit,
    rss_bytes,
)
from tests.integration.support import eventually, eventually_async, unique
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

pytestmark = pytest.mark.integration

DEVICES = int(os.environ.get("EVENTING_FLEET_DEVICES", "1000"))
SECONDS = float(os.environ.get("EVENTING_FLEET_SECONDS", "60"))
PERIOD = float(os.environ.get("EVENTING_FLEET_PERIOD", "5"))
MEMORY_GROWTH_LIMIT = 64 * 1024 * 1024
"""Allowed RSS growth over the last phase: far below what holding the phase's
messages (tens of thousands of events) in memory would cost, far above the noise
of Python's allocator."""
NAME = "mqttsource/default/fleet"


class Delivered:
    """The payloads the subscriber received, read incrementally."""

    def __init__(self, subscriber: RecordingSubscriber) -> None:
        self.subscriber = subscriber
        self.payloads: set[str] = set()
        self._seen = 0

    def update(self) -> set[str]:
        received = self.subscriber.received
        for r in received[self._seen :]:
            if r.event is not None and r.event.data is not None:
                self.payloads.add(r.event.data.decode())
        self._seen = len(received)
        return self.payloads


async def confirmed_more(fleet: Fleet, count: int, timeout: float, what: str) -> None:
    target = len(fleet.confirmed) + count
    await eventually(lambda: len(fleet.confirmed) >= target, timeout=timeout, what=what)


async def source_connected(proc: EventingProcess, timeout: float = 60.0) -> None:
    async def connected() -> bool:
        return bool((await source_status(proc.admin_url, NAME))["state"] == "connected")

    await eventually_async(connected, timeout=timeout, what=f"{NAME} connected")


async def test_a_fleet_through_restarts_of_eventing_and_mosquitto(
    tmp_path: Path, subscriber: RecordingSubscriber
) -> None:
    raise_open_file_limit(2 * DEVICES + 1024)
    server = PrivateMosquitto(tmp_path / "mosquitto")
    await server.start()
    prefix = unique("fleet")
    source = mqtt_source("fleet", server.url, [f"{prefix}/+/telemetry"], unique("fleet-src"))
    directory = write_manifests(tmp_path / "manifests", manifests(subscriber.url, source))
    proc = EventingProcess(directory, tmp_path / "data")
    fleet = Fleet("127.0.0.1", server.port, prefix, DEVICES, PERIOD)
    delivered = Delivered(subscriber)
    per_phase = int(DEVICES / PERIOD * SECONDS / 3)
    phase_deadline = SECONDS + 120
    started = time.monotonic()
    try:
        await proc.start()
        await source_connected(proc)
        fleet.start()
        await eventually(lambda: fleet.connected == DEVICES, timeout=120, what="fleet up")
        await confirmed_more(fleet, per_phase, phase_deadline, "phase 1")

        await proc.kill()  # the fleet keeps publishing into the source's session
        await confirmed_more(fleet, DEVICES, phase_deadline, "published while down")
        await proc.start()
        await source_connected(proc)
        await confirmed_more(fleet, per_phase, phase_deadline, "phase 2")

        await server.restart()
        await source_connected(proc, timeout=120)
        await eventually(lambda: fleet.connected == DEVICES, timeout=120, what="fleet back")

        assert proc.proc is not None
        pid = proc.proc.pid
        memory = [rss_bytes(pid)]
        target = len(fleet.confirmed) + per_phase
        deadline = time.monotonic() + phase_deadline
        while len(fleet.confirmed) < target:  # phase 3, sampling memory once a second
            assert time.monotonic() < deadline, "phase 3 timed out"
            await asyncio.sleep(1.0)  # a sampling interval, not a synchronisation
            memory.append(rss_bytes(pid))
        await fleet.stop()

        confirmed = set(fleet.confirmed)
        await eventually(
            lambda: confirmed <= delivered.update(),
            timeout=180,
            what=f"all {len(confirmed)} confirmed messages delivered "
            f"(missing {len(confirmed - delivered.payloads)})",
        )

        async def drained() -> bool:
            status = await source_status(proc.admin_url, NAME)
            return bool(status["state"] == "connected" and status["held"] == 0)

        await eventually_async(drained, what="source connected with nothing held")
        status = await source_status(proc.admin_url, NAME)
        summary = {
            "devices": DEVICES,
            "period_s": PERIOD,
            "seconds": round(time.monotonic() - started),
            "confirmed": len(confirmed),
            "delivered_distinct": len(delivered.payloads),
            "deliveries": len(subscriber.received),
            "device_reconnects": fleet.reconnects,
            "source": {k: status[k] for k in ("received", "emitted", "reconnects", "stalls")},
            "rss_mb_phase3": [round(m / 2**20, 1) for m in (memory[0], min(memory), max(memory))],
        }
        print("fleet summary:", json.dumps(summary))
        assert status["stalls"] == 0
        half = len(memory) // 2
        assert max(memory[half:]) - min(memory[:half] or memory) < MEMORY_GROWTH_LIMIT, memory
    finally:
        await fleet.stop()
        if proc.proc is not None and proc.proc.returncode is None:
            await proc.terminate(60)
        await server.stop()
