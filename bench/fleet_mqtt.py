"""A simulated device fleet: ``--devices`` devices, each on its own MQTT 5 connection,
publish one QoS 1 reading every ``--period`` seconds to ``fleet/<device>/telemetry``
for ``--seconds``; every 10 s a line with the messages the server acknowledged and the
devices connected. Devices whose connection fails reconnect after 0.5-2 s.

    .venv/bin/python bench/fleet_mqtt.py [--url mqtt://127.0.0.1:1893] \\
        [--devices 1000] [--period 5] [--seconds 300] [--prefix fleet]

Used with ``examples/mqtt-fleet`` in docs/walkthrough-iot.md. Raise the open-file
limit for more than about 900 devices (``ulimit -n``); the script raises its soft
limit up to the hard one itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the simulator lives in tests/
from tests.integration.mqtt_support import Fleet, raise_open_file_limit


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="mqtt://127.0.0.1:1893")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--period", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--prefix", default="fleet")
    args = parser.parse_args()
    raise_open_file_limit(args.devices + 256)
    parts = urlsplit(args.url)
    fleet = Fleet(
        parts.hostname or "127.0.0.1", parts.port or 1883, args.prefix, args.devices, args.period
    )
    start = time.monotonic()
    fleet.start()
    try:
        while (elapsed := time.monotonic() - start) < args.seconds:
            await asyncio.sleep(min(10.0, args.seconds - elapsed))
            print(
                f"{time.monotonic() - start:6.0f}s  acknowledged {len(fleet.confirmed):>8}  "
                f"connected {fleet.connected:>5}  reconnects {fleet.reconnects}",
                flush=True,
            )
    finally:
        await fleet.stop()
    rate = len(fleet.confirmed) / (time.monotonic() - start)
    print(f"{len(fleet.confirmed)} messages acknowledged, {rate:.0f}/s", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
