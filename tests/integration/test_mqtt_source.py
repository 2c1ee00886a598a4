"""MqttSource against a real Mosquitto: the MQTT binding in both protocol versions,
PUBACK only after the store (proved by killing the source while the store fails), and
a restart of (a private) Mosquitto mid-stream with a persistent session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sources.mqtt.adapter import MODEL, MqttAdapter, build
from tests.integration.mqtt_support import PrivateMosquitto
from tests.integration.support import (
    BROKER_SINK,
    RecordingEmit,
    eventually,
    running,
    unique,
)

pytestmark = pytest.mark.integration


def source(url: str, base: str, client_id: str, *, protocol: str = "5") -> MqttAdapter:
    return build(
        MODEL.model_validate(
            {
                "apiVersion": "eventing.local/v1alpha1",
                "kind": "MqttSource",
                "metadata": {"name": "devices"},
                "spec": {
                    "url": url,
                    "topics": [f"{base}/+/telemetry", f"{base}/events/#"],
                    "clientId": client_id,
                    "protocolVersion": protocol,
                    "sink": BROKER_SINK,
                },
            }
        )
    )


@pytest.fixture
async def publisher(mqtt_url: str) -> AsyncIterator[aiomqtt.Client]:
    parts = urlsplit(mqtt_url)
    async with aiomqtt.Client(
        parts.hostname or "127.0.0.1", parts.port or 1883, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        yield client


def properties(content_type: str | None = None, **user: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if content_type:
        props.ContentType = content_type
    if user:
        props.UserProperty = list(user.items())
    return props


async def test_messages_become_events(mqtt_url: str, publisher: aiomqtt.Client) -> None:
    base = unique("it-mqtt")
    emit = RecordingEmit()
    adapter = source(mqtt_url, base, unique("c"))
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        await publisher.publish(f"{base}/dock-7/telemetry", b"21.5", qos=1)
        await publisher.publish(
            f"{base}/events/door",
            b'{"open":true}',
            qos=1,
            properties=properties(
                "application/json", specversion="1.0", id="b-1", type="t.door", source="/dock-7"
            ),
        )
        structured = {"specversion": "1.0", "id": "s-1", "type": "t.s", "source": "/dev"}
        await publisher.publish(
            f"{base}/events/s",
            json.dumps(structured).encode(),
            qos=1,
            properties=properties("application/cloudevents+json"),
        )
        await publisher.publish(f"{base}/other/ignored", b"not subscribed", qos=1)
        await eventually(lambda: len(emit.events) == 3, what="3 events")
    plain, binary, struct = emit.events
    assert plain.attributes["type"] == "local.eventing.mqtt.event"
    assert plain.attributes["subject"] == f"{base}/dock-7/telemetry"
    assert plain.attributes["source"] == "/apis/v1/namespaces/default/mqttsources/devices"
    assert plain.data == b"21.5"
    assert binary.id == "b-1"
    assert binary.datacontenttype == "application/json"
    assert binary.data == b'{"open":true}'
    assert struct.id == "s-1"


async def test_mqtt311_structured_and_plain(mqtt_url: str) -> None:
    base = unique("it-mqtt")
    emit = RecordingEmit()
    adapter = source(mqtt_url, base, unique("c"), protocol="3.1.1")
    parts = urlsplit(mqtt_url)
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        async with aiomqtt.Client(parts.hostname or "", parts.port or 1883) as old:
            event = {
                "specversion": "1.0",
                "id": "v3-1",
                "type": "t",
                "source": "/s",
                "datacontenttype": "application/json",
                "data": {"v": 1},
            }
            await old.publish(f"{base}/events/x", json.dumps(event).encode(), qos=1)
            await old.publish(f"{base}/pump/telemetry", b"\x01\x02", qos=1)
            await eventually(lambda: len(emit.events) == 2, what="2 events")
    assert emit.events[0].id == "v3-1"
    assert emit.events[0].data == b'{"v":1}'
    assert emit.events[1].data == b"\x01\x02"


async def test_unacknowledged_messages_come_back_to_the_session(
    mqtt_url: str, publisher: aiomqtt.Client
) -> None:
    base, client_id = unique("it-mqtt"), unique("c")
    failing = RecordingEmit(failing=True)
    first = source(mqtt_url, base, client_id)
    async with running(first, failing):
        await eventually(lambda: first.health.state == "connected", what="connected")
        for i in range(20):
            await publisher.publish(f"{base}/d{i}/telemetry", f"{i}".encode(), qos=1)
        await eventually(lambda: failing.failures >= 2, what="failing emits")
    assert failing.events == []
    assert first.health.emitted == 0
    # The source died without a PUBACK: the persistent session gets them all again.
    emit = RecordingEmit()
    second = source(mqtt_url, base, client_id)
    async with running(second, emit):
        await eventually(lambda: len(emit.payloads()) == 20, what="all 20 redelivered")
    assert second.health.emitted >= 20


async def test_restart_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """On a private Mosquitto (restarting the shared one would disturb other tests)."""
    server = PrivateMosquitto(tmp_path / "mosquitto")
    await server.start()
    try:
        await restart_mid_stream(server)
    finally:
        await server.stop()


async def restart_mid_stream(server: PrivateMosquitto) -> None:
    base = unique("it-mqtt")
    emit = RecordingEmit(delay=0.01)
    adapter = source(server.url, base, unique("c"))
    host, port = "127.0.0.1", server.port
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        async with aiomqtt.Client(host, port) as pub:
            for i in range(200):
                await pub.publish(f"{base}/a/telemetry", f"a{i}".encode(), qos=1)
        await eventually(lambda: len(emit.events) >= 10, what="stream under way")
        await server.restart()
        await eventually(
            lambda: adapter.health.state == "connected" and adapter.health.reconnects >= 1,
            timeout=60,
            what="reconnected",
        )
        async with aiomqtt.Client(host, port) as pub:
            for i in range(50):
                await pub.publish(f"{base}/b/telemetry", f"b{i}".encode(), qos=1)
        expected = {f"a{i}".encode() for i in range(200)} | {f"b{i}".encode() for i in range(50)}
        await eventually(lambda: expected <= emit.payloads(), timeout=60, what="all 250")
