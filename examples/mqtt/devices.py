"""Three simulated freezers: plain JSON telemetry (QoS 1) every second, and a CloudEvent
alarm in MQTT 5 binary mode when one warms up. Usage:
python examples/mqtt/devices.py [--url mqtt://127.0.0.1:1893] [--seconds 10]"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


async def main(url: str, seconds: int) -> None:
    parts = urlsplit(url)
    async with aiomqtt.Client(
        parts.hostname or "127.0.0.1", parts.port or 1883, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        for tick in range(seconds):
            for freezer in ("f1", "f2", "f3"):
                temp = round(random.uniform(-22, -14), 1)
                reading = {"freezer": freezer, "tempC": temp, "tick": tick}
                await client.publish(
                    f"warehouse/{freezer}/telemetry", json.dumps(reading).encode(), qos=1
                )
                if temp > -16:
                    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    props.ContentType = "application/json"
                    props.UserProperty = [
                        ("specversion", "1.0"),
                        ("id", f"{freezer}-{tick}"),
                        ("type", "com.example.freezer.alarm"),
                        ("source", f"/warehouse/{freezer}"),
                    ]
                    await client.publish(
                        f"warehouse/alarms/{freezer}",
                        json.dumps(reading).encode(),
                        qos=1,
                        properties=props,
                    )
            await asyncio.sleep(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="mqtt://127.0.0.1:1893")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.seconds))
