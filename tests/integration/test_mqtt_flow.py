"""MqttSource never stalls (issue 15), against a real Mosquitto:

- thousands of QoS 1 messages from several publishers all arrive: the source stops
  reading instead of discarding when the server sends more than the Receive Maximum
  (Mosquitto 2.0.11 does, once the client acknowledges; a scripted server does it on
  purpose, so the test does not depend on the server's version);
- a stall (messages held, none acknowledged) shows in health and /metrics, and the
  store error it reports clears once the store has drained;
- a message paho refuses (U+FEFF in a user property, which MQTT allows and Mosquitto
  forwards) arrives, and so do the messages behind it;
- from a server that does not validate: a PUBLISH that is not valid MQTT is
  acknowledged and counted when its packet id can be read; one whose packet id cannot
  be read drops the connection each time, with a growing backoff;
- the reconnect backoff grows while connections make no progress (a second client
  taking the session) and resets once a message is acknowledged;
- what Mosquitto itself does: it refuses invalid UTF-8 from a publisher, and drops
  messages beyond ``max_queued_messages`` for a connected client whose window is full.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import aiomqtt
import pytest

from sources.mqtt.adapter import MODEL, MqttAdapter, build
from tests.integration.e2e_support import (
    event_payloads,
    manifests,
    mqtt_endpoint,
    mqtt_source,
)
from tests.integration.mqtt_support import (
    PUBACK,
    PrivateMosquitto,
    RawPublisher,
    ScriptedServer,
    publish_all,
    publish_body,
    remove_sessions,
    user_property,
)
from tests.integration.support import BROKER_SINK, RecordingEmit, eventually, running, unique
from tests.support.subscriber import Answer, Received, RecordingSubscriber

if TYPE_CHECKING:
    from tests.conftest import SystemFactory

pytestmark = pytest.mark.integration


def adapter_for(url: str, topic: str, client_id: str, **spec: object) -> MqttAdapter:
    return build(
        MODEL.model_validate(
            {
                "apiVersion": "eventing.local/v1alpha1",
                "kind": "MqttSource",
                "metadata": {"name": "fleet"},
                "spec": {
                    "url": url,
                    "topics": [topic],
                    "clientId": client_id,
                    "sink": BROKER_SINK,
                    **spec,
                },
            }
        )
    )


@pytest.fixture
async def client_ids(mqtt_url: str) -> AsyncIterator[list[str]]:
    """Session client ids to remove from the shared Mosquitto afterwards."""
    ids: list[str] = []
    yield ids
    await remove_sessions(mqtt_url, ids)


async def test_thousands_from_many_publishers_all_arrive(
    mqtt_url: str, client_ids: list[str]
) -> None:
    base, client_id = unique("it-flow"), unique("c")
    client_ids.append(client_id)
    emit = RecordingEmit(delay=0.01)  # a store slower than the devices
    adapter = adapter_for(mqtt_url, f"{base}/#", client_id)
    host, port = mqtt_endpoint(mqtt_url)
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        sent = await publish_all(host, port, [f"{base}/d{i}" for i in range(10)], 500, base)
        expected = {p.encode() for p in sent}
        await eventually(
            lambda: expected <= emit.payloads(),
            timeout=120,
            what=f"all {len(expected)} acknowledged messages (got {len(emit.payloads())})",
        )
        await eventually(lambda: adapter.health.held == 0, what="nothing held")
    assert len(expected) == 5000
    assert adapter.health.reconnects == 0
    assert adapter.health.refused == 0


class Gate:
    """503 until opened: the trigger keeps every event, so the store fills."""

    def __init__(self) -> None:
        self.open = False

    def __call__(self, received: Received, n: int) -> Answer:
        return Answer(202) if self.open else Answer(503)


async def metrics_text(admin_url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{admin_url}/metrics") as response:
        return await response.text()


async def test_stall_shows_in_health_and_metrics_and_clears_when_the_store_drains(
    system: SystemFactory,
    subscriber: RecordingSubscriber,
    mqtt_url: str,
    client_ids: list[str],
) -> None:
    gate = Gate()
    subscriber.responder = gate
    base, client_id = unique("it-flow"), unique("c")
    client_ids.append(client_id)
    source = mqtt_source("devices", mqtt_url, [f"{base}/#"], client_id, receive_maximum=20)
    running_system = await system(manifests(subscriber.url, source), max_events=8)
    (adapter,) = running_system.sources
    assert isinstance(adapter, MqttAdapter)
    adapter.stall_after = 1.0
    health = adapter.health
    await eventually(lambda: health.state == "connected", what="connected")
    host, port = mqtt_endpoint(mqtt_url)
    sent = await publish_all(host, port, [f"{base}/a", f"{base}/b"], 15, base)

    await eventually(lambda: health.state == "stalled", what="stalled")
    assert health.held > 0
    assert health.stalls == 1
    assert "unacknowledged messages held" in (health.last_error or "")
    assert "StoreFullError" in (health.last_error or "")
    text = await metrics_text(running_system.admin_url)
    name = 'source="mqttsource/default/devices"'
    assert any(
        name in line and 'state="stalled"' in line and line.endswith(" 1.0")
        for line in text.splitlines()
    )
    assert any(name in line and 'counter="held"' in line for line in text.splitlines())

    gate.open = True
    await subscriber.wait_for(lambda rs: set(sent) <= event_payloads(rs), timeout=120)
    await eventually(
        lambda: health.state == "connected" and health.held == 0 and health.last_error is None,
        what=f"connected, nothing held, no error (last_error={health.last_error!r})",
    )


FEFF = "\ufeff".encode()


async def test_a_message_paho_would_refuse_arrives(mqtt_url: str, client_ids: list[str]) -> None:
    """U+FEFF in a user property: valid MQTT (it must be kept, [MQTT-1.5.4-3]), forwarded
    by Mosquitto, and it made paho drop the connection on every redelivery."""
    base, client_id = unique("it-flow"), unique("c")
    client_ids.append(client_id)
    emit = RecordingEmit()
    adapter = adapter_for(mqtt_url, f"{base}/#", client_id)
    host, port = mqtt_endpoint(mqtt_url)
    async with running(adapter, emit):
        await eventually(lambda: adapter.health.state == "connected", what="connected")
        async with RawPublisher(host, port, unique("raw")) as raw:
            assert await raw.publish(f"{base}/d".encode(), b"before") == PUBACK
            note = user_property(b"note", b"a" + FEFF + b"b")
            assert await raw.publish(f"{base}/d".encode(), b"with-feff", note) == PUBACK
            for n in range(5):
                assert await raw.publish(f"{base}/d".encode(), f"after-{n}".encode()) == PUBACK
        expected = {b"before", b"with-feff"} | {f"after-{n}".encode() for n in range(5)}
        await eventually(lambda: expected <= emit.payloads(), what="all seven")
    assert adapter.health.refused == 0
    assert adapter.health.reconnects == 0


async def test_poison_from_a_server_that_does_not_validate_is_acknowledged_and_counted() -> None:
    bad_utf8 = user_property(b"k", b"\xff\xfe")
    script = [
        (1, publish_body(b"s/d", 1, b"", b"one")),
        (2, publish_body(b"s/d", 2, bad_utf8, b"bad property")),
        (3, publish_body(b"s/\xff", 3, b"", b"bad topic")),
        (4, publish_body(b"s/d", 4, b"\x11\x00\x00\x00\x01", b"session expiry in PUBLISH")),
        (5, publish_body(b"s/d", 5, b"", b"five")),
    ]
    emit = RecordingEmit()
    async with ScriptedServer(script) as server:
        adapter = adapter_for(f"mqtt://127.0.0.1:{server.port}", "s/#", unique("c"))
        async with running(adapter, emit):
            await eventually(lambda: server.acked == [1, 2, 3, 4, 5], what="all acknowledged")
    assert emit.payloads() == {b"one", b"five"}
    assert adapter.drops == {"poison": 3}
    assert adapter.health.refused == 3
    assert adapter.health.reconnects == 0
    assert "not a valid MQTT PUBLISH" in (adapter.health.last_error or "")


async def test_a_publish_without_a_readable_packet_id_cannot_be_skipped() -> None:
    """Its topic length runs past the packet: nothing after it can be read, so there is
    no packet id to acknowledge. The connection is dropped, the server sends it first
    again on every connection, and the source backs off ever longer (no progress)."""
    script = [
        (1, publish_body(b"s/d", 1, b"", b"one")),
        (2, struct.pack("!H", 300) + b"s/d"),
        (3, publish_body(b"s/d", 3, b"", b"three")),
    ]
    emit = RecordingEmit()
    async with ScriptedServer(script) as server:
        adapter = adapter_for(f"mqtt://127.0.0.1:{server.port}", "s/#", unique("c"))
        async with running(adapter, emit):
            await eventually(lambda: server.connections >= 5, what="five connections")
            assert adapter.backoff.attempt >= 3  # reset once, by the ack of "one"
    assert server.acked == [1]
    assert emit.payloads() == {b"one"}


async def test_mosquitto_refuses_invalid_utf8_itself(mqtt_url: str) -> None:
    """What Mosquitto 2.0.11 does with invalid UTF-8 in a user property: it closes
    the publisher's connection, so such a message never reaches a subscriber."""
    host, port = mqtt_endpoint(mqtt_url)
    async with RawPublisher(host, port, unique("raw")) as raw:
        answer = await raw.publish(b"it-flow/x", b"x", user_property(b"k", b"\xff\xfe"))
    assert answer is None


def taken_over(adapter: MqttAdapter, times: int) -> Callable[[], bool]:
    return lambda: adapter.health.reconnects >= times


async def test_backoff_grows_without_progress_and_resets_after_an_ack(
    mqtt_url: str, client_ids: list[str]
) -> None:
    base, client_id = unique("it-flow"), unique("c")
    client_ids.append(client_id)
    emit = RecordingEmit()
    adapter = adapter_for(mqtt_url, f"{base}/#", client_id)
    host, port = mqtt_endpoint(mqtt_url)
    async with running(adapter, emit):
        for takeover in range(1, 4):
            await eventually(
                lambda: adapter.health.state == "connected", timeout=60, what="connected"
            )
            # A second client with the same id takes the session: the source is
            # disconnected right after subscribing, without acknowledging anything.
            async with RawPublisher(host, port, client_id, clean_start=False, expiry=3600):
                await eventually(taken_over(adapter, takeover), what="taken over")
            assert adapter.backoff.attempt == takeover  # not reset by the subscribe
        await eventually(lambda: adapter.health.state == "connected", timeout=60, what="back")
        async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
            await pub.publish(f"{base}/d", b"progress", qos=1)
        await eventually(lambda: b"progress" in emit.payloads(), what="delivered")
        await eventually(lambda: adapter.backoff.attempt == 0, what="backoff reset by the ack")


async def test_mosquitto_drops_beyond_max_queued_messages_for_an_online_client(
    tmp_path: Path,
) -> None:
    """docs/sources.md: ``max_queued_messages`` also applies to a connected client whose
    in-flight window is full (here: the store refuses, so the source holds its Receive
    Maximum of 10 unacknowledged). Mosquitto acknowledges every publish to the device
    and then drops what is beyond the window plus 50 queued messages."""
    server = PrivateMosquitto(tmp_path / "mosquitto", max_queued_messages=50)
    await server.start()
    try:
        emit = RecordingEmit(failing=True)
        adapter = adapter_for(server.url, "q/#", unique("c"), receiveMaximum=10)
        async with running(adapter, emit):
            await eventually(lambda: adapter.health.state == "connected", what="connected")
            sent = await publish_all("127.0.0.1", server.port, ["q/a"], 200, "m")
            assert len(sent) == 200  # every one acknowledged to the device
            await eventually(lambda: adapter.health.held == 10, what="window full")
            emit.failing = False
            await eventually(lambda: adapter.health.held == 0, what="drained")
            async with RawPublisher("127.0.0.1", server.port, unique("raw")) as raw:
                assert await raw.publish(b"q/a", b"last") == PUBACK  # in order after the rest
            await eventually(lambda: b"last" in emit.payloads(), what="the last one")
        assert len(emit.payloads()) == 10 + 50 + 1
    finally:
        await server.stop()


async def test_a_server_ignoring_receive_maximum_meets_back_pressure_not_discards() -> None:
    """What Mosquitto 2.0.11 does now and then, done on purpose: the server sends 1,000
    QoS 1 messages at once to a source with a Receive Maximum of 10. The source stops
    reading at 4 x 10 held messages instead of discarding, and acknowledges all of
    them, in order, as its (slow) store takes them."""
    script = [(n, publish_body(b"s/d", n, b"", f"m{n}".encode())) for n in range(1, 1001)]
    emit = RecordingEmit(delay=0.005)
    async with ScriptedServer(script) as server:
        adapter = adapter_for(
            f"mqtt://127.0.0.1:{server.port}", "s/#", unique("c"), receiveMaximum=10
        )
        async with running(adapter, emit):
            await eventually(lambda: len(server.acked) == 1000, timeout=120, what="all acked")
    assert server.acked == list(range(1, 1001))
    assert emit.payloads() == {f"m{n}".encode() for n in range(1, 1001)}
    assert adapter.pauses >= 1
    assert adapter.health.refused == 0
    assert adapter.health.reconnects == 0
