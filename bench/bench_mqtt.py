"""Events per second out of Mosquitto, three ways, in the same run against the same
server: a raw QoS 1 consumer (the baseline), our MqttSource into a counting ``emit``,
and the whole system (``eventing run``: MqttSource -> Broker -> Trigger -> HTTP
subscriber); with the ratios to the baseline.

Run against the Mosquitto of ``scripts/servers``::

    scripts/servers up mosquitto
    .venv/bin/python bench/bench_mqtt.py [--messages 20000] [--rounds 3]

Every cell starts from a persistent session (fixed client id, ``clean_start`` false,
Receive Maximum 100) that the server holds ``--messages`` QoS 1 messages of 50 bytes
for, published before its clock starts; the clock runs from the consumer's connect to
its last message (the system column: from the subscriber's first delivery to its
last, as in ``bench_sources.py``). The median of ``--rounds`` rounds is reported.

- **raw aiomqtt**: aiomqtt with an unbounded queue and paho's own acknowledgement
  (PUBACK as soon as the message is parsed): receive and acknowledge, nothing else.
- **raw paho**: paho alone with its network thread (``loop_start``), acknowledging
  as it parses. The ratios are to the faster of the two raw clients.
- **source**: our adapter (paho driven on the loop, back-pressure, decode, id, PUBACK
  in order after "storing"); the ``emit`` only counts, so this is the source's cost.
- **system**: ``eventing run`` as a subprocess (durable SQLite store, fsync per group
  commit), the source, a Broker and a Trigger to ``bench/bench_servers.py lean``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
from bench_sources import PAYLOAD, SINK, SUBSCRIBER, median, timed_source, timed_system
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sources.mqtt import adapter as mqtt

URL = os.environ.get("EVENTING_TEST_MQTT_URL", "mqtt://127.0.0.1:1893")
HOST = urlsplit(URL).hostname or "127.0.0.1"
PORT = urlsplit(URL).port or 1883
RECEIVE_MAXIMUM = 100
PUBLISHERS = 4


def connect_properties(expiry: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


def session_client(client_id: str, *, clean: bool, expiry: int) -> aiomqtt.Client:
    return aiomqtt.Client(
        HOST,
        PORT,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=clean,
        properties=connect_properties(expiry),
        max_queued_incoming_messages=0,  # unbounded: never discards
    )


async def fill_session(name: str, n: int) -> None:
    """Create the session ``name`` subscribed to ``name/#`` and have the server queue
    ``n`` QoS 1 messages for it while it is away."""
    async with session_client(name, clean=True, expiry=3600) as client:
        await client.subscribe(f"{name}/#", qos=1)

    async def publisher(index: int) -> None:
        async with aiomqtt.Client(HOST, PORT, protocol=aiomqtt.ProtocolVersion.V5) as client:
            for i in range(index, n, PUBLISHERS):
                await client.publish(f"{name}/device-{i % 50}", PAYLOAD, qos=1)

    await asyncio.gather(*(publisher(i) for i in range(PUBLISHERS)))


async def drop_session(name: str) -> None:
    async with session_client(name, clean=True, expiry=0):
        pass


async def raw_paho(name: str, n: int) -> float:
    """paho's own network thread (``loop_start``), acknowledging as it parses."""
    done = threading.Event()
    seen = 0

    def on_message(_c: object, _u: object, _m: paho.MQTTMessage) -> None:
        nonlocal seen
        seen += 1
        if seen >= n:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv5)
    client.on_message = on_message
    start = time.perf_counter()
    client.connect(HOST, PORT, clean_start=False, properties=connect_properties(3600))
    client.loop_start()
    try:
        if not await asyncio.to_thread(done.wait, 300):
            raise SystemExit(f"raw paho: {seen}/{n} messages")
        return n / (time.perf_counter() - start)
    finally:
        client.disconnect()
        client.loop_stop()


async def raw_aiomqtt(name: str, n: int) -> float:
    start = time.perf_counter()
    async with session_client(name, clean=False, expiry=3600) as client:
        seen = 0
        async for _ in client.messages:
            seen += 1
            if seen >= n:
                break
        return n / (time.perf_counter() - start)


def resource(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "eventing.local/v1alpha1",
        "kind": "MqttSource",
        "metadata": {"name": "bench"},
        "spec": {
            "url": URL,
            "topics": [f"{name}/#"],
            "clientId": name,
            "sessionExpiry": "PT1H",
            "receiveMaximum": RECEIVE_MAXIMUM,
            "sink": SINK,
        },
    }


async def source(name: str, n: int) -> float:
    return await timed_source(mqtt.build(mqtt.MODEL.model_validate(resource(name))), n)


async def system(name: str, n: int) -> float:
    return await timed_system(resource(name), n)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, rounds = args.messages, args.rounds
    print(f"events/s of each round (median reported), {n} messages per round:")
    await SUBSCRIBER.start()
    try:
        # interleaved per round would be fairer on a busy machine; the order is
        # raw, source, system as in bench_sources.py
        aio = await median(n, rounds, fill_session, drop_session, raw_aiomqtt)
        threaded = await median(n, rounds, fill_session, drop_session, raw_paho)
        ours = await median(n, rounds, fill_session, drop_session, source)
        whole = await median(n, rounds, fill_session, drop_session, system)
    finally:
        await SUBSCRIBER.stop()
    print(f"\n{n} QoS 1 messages of {len(PAYLOAD)} bytes, median of {rounds} rounds, events/s\n")
    base = max(aio, threaded)  # the ratios are to the faster raw client
    print(
        f"{'raw aiomqtt':>12} {'raw paho':>9} {'source':>9} {'system':>9} "
        f"{'source/raw':>11} {'system/raw':>11}"
    )
    print(
        f"{aio:>12,.0f} {threaded:>9,.0f} {ours:>9,.0f} {whole:>9,.0f} "
        f"{ours / base:>11.2f} {whole / base:>11.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
