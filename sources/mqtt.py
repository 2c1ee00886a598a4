"""MqttSource adapter (aiomqtt over paho): subscribe with QoS 1 in a persistent session
and put each message into the broker as a CloudEvent, sending PUBACK only after the
broker stored it.

Delayed PUBACK: aiomqtt 2.5 has no acknowledgement API, and paho acknowledges a QoS 1
PUBLISH as soon as its ``on_message`` returns, which for aiomqtt is when the message is
queued for the iterator, before we could store it. paho 2.x has a manual mode
(``manual_ack_set(True)``, then ``ack(mid, qos)``); aiomqtt creates the paho client and
keeps it as ``Client._client``, so the adapter switches that client to manual mode
before connecting and acks each message, in arrival order (MQTT requires PUBACKs in
order), after ``emit`` returned. ``_paho`` raises a non-retriable ``SourceError`` if a
future aiomqtt drops that attribute, rather than silently acknowledging early.

MQTT has no negative acknowledgement and forbids resending on an open connection, so
when ``emit`` raises, the source keeps the unacknowledged batch and retries ``emit``
with jittered backoff (when the store fills part-way through a batch, the prefix that
fit is acknowledged and only the rest is kept: :func:`sources.emitting.emit_prefix`);
if the process dies meanwhile, the server redelivers the unacknowledged messages to
the persistent session on the next connect.

Messages that cannot become events (over the size limit, or an invalid CloudEvent)
are acknowledged and counted in ``health.refused``: MQTT cannot reject them, and
leaving them unacknowledged would stall the session's in-flight window.
Retained messages are sent by the server only when a subscription is new (MQTT 5
retain handling 1), so a reconnect does not replay them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Final

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from eventing.errors import InvalidEventError, SourceError
from eventing.events import Event
from sources.base import Emit, SourceHealth
from sources.emitting import emit_prefix, refuse, too_large
from sources.mqtt_binding import MqttMessage, message_to_event
from sources.mqtt_model import MqttSourceResource
from sources.reconnect import Backoff, describe, keep_connected
from sources.source_spec import apply_overrides, source_path

log = logging.getLogger(__name__)

MODEL = MqttSourceResource
TIMEOUT: Final = 10.0
TRANSIENT: Final = (aiomqtt.MqttError, OSError, TimeoutError)


def _paho(client: aiomqtt.Client) -> paho.Client:
    """The paho client inside aiomqtt, checked to support manual acknowledgement."""
    inner = getattr(client, "_client", None)
    if not isinstance(inner, paho.Client) or not hasattr(inner, "manual_ack_set"):
        raise SourceError(
            "this aiomqtt/paho-mqtt does not expose manual acknowledgement; refusing to "
            "acknowledge messages before they are stored",
            retriable=False,
        )
    return inner


class MqttAdapter:
    """The running form of one ``MqttSource``."""

    def __init__(self, resource: MqttSourceResource) -> None:
        self.resource = resource
        self.name = f"mqttsource/{resource.key}"
        self.health = SourceHealth(self.name, "MqttSource")
        self._source = source_path(resource.namespace, "mqttsources", resource.name)
        self._client_id = resource.client_id
        self._limit = resource.max_message_bytes
        self._store_backoff = Backoff(initial=0.1, maximum=5.0)
        self._endpoint = resource.endpoint()

    async def run(self, emit: Emit) -> None:
        backoff = Backoff()

        async def session() -> None:
            await self._session(emit, backoff)

        await keep_connected(self.health, session, transient=TRANSIENT, backoff=backoff, log=log)

    def _client(self) -> aiomqtt.Client:
        spec = self.resource.spec
        host, port, user, password, tls = self._endpoint
        v5 = spec.protocol_version == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = int(spec.session_expiry)
            properties.ReceiveMaximum = spec.receive_maximum
        client = aiomqtt.Client(
            host,
            port,
            username=user,
            password=password,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else False,
            clean_start=False if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            keepalive=int(spec.keep_alive),
            timeout=TIMEOUT,
            tls_context=ssl.create_default_context() if tls else None,
            max_queued_incoming_messages=spec.receive_maximum * 4,
        )
        _paho(client).manual_ack_set(True)  # see the module docstring
        return client

    async def _session(self, emit: Emit, backoff: Backoff) -> None:
        spec = self.resource.spec
        client = self._client()
        async with client:
            if spec.protocol_version == "5":
                options = SubscribeOptions(qos=spec.qos, retainHandling=1)
                await client.subscribe([(topic, options) for topic in spec.topics])
            else:
                filters: list[tuple[str, int]] = [(topic, spec.qos) for topic in spec.topics]
                await client.subscribe(filters)
            self.health.set_state("connected")
            backoff.reset()
            messages = client.messages
            while True:
                batch = [await anext(messages)]
                while len(messages) > 0 and len(batch) < spec.receive_maximum:
                    batch.append(await anext(messages))
                await self._handle(client, batch, emit)

    async def _handle(
        self, client: aiomqtt.Client, batch: list[aiomqtt.Message], emit: Emit
    ) -> None:
        items: list[tuple[int, Event]] = []  # (index in the batch, event)
        for index, message in enumerate(batch):
            self.health.received += 1
            event = self._decode(message)
            if event is not None:
                items.append((index, event))
        acked = 0  # batch[:acked] are acknowledged

        def ack_until(end: int) -> None:
            nonlocal acked
            for message in batch[acked:end]:  # PUBACK in arrival order, refused included
                if message.qos > 0:
                    _paho(client).ack(message.mid, message.qos)
            acked = max(acked, end)

        while True:
            outcome = await emit_prefix(emit, items, self.health, log)
            if outcome.stored:
                ack_until(items[outcome.stored - 1][0] + 1)
            items = items[outcome.stored :]
            if outcome.error is None:
                break
            # StoreError above all: keep the rest of the batch unacknowledged, try again
            error = describe(outcome.error)
            self.health.last_error = f"emit failed: {error}"
            delay = self._store_backoff.next()
            log.warning("%s: emit failed (%s); retrying in %.1fs", self.name, error, delay)
            await asyncio.sleep(delay)
        self._store_backoff.reset()
        ack_until(len(batch))

    def _decode(self, message: aiomqtt.Message) -> Event | None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        where = f"message on {message.topic.value[:120]!r}"
        error = too_large(len(payload), self._limit)
        if error is not None:
            refuse(self.health, log, f"{where} refused", error)
            return None
        properties = message.properties
        content_type = getattr(properties, "ContentType", None) if properties else None
        user_properties = getattr(properties, "UserProperty", None) if properties else None
        mqtt = MqttMessage(
            topic=message.topic.value,
            payload=payload,
            qos=message.qos,
            mid=message.mid,
            content_type=content_type,
            user_properties=tuple(user_properties or ()),
        )
        try:
            event = message_to_event(mqtt, self._source, self._client_id)
        except InvalidEventError as exc:
            refuse(self.health, log, f"{where} is not a valid CloudEvent", exc)
            return None
        apply_overrides(event.attributes, self.resource.spec.ce_overrides)
        return event


def build(resource: MqttSourceResource) -> MqttAdapter:
    """Construct the adapter for a validated ``MqttSource`` (composition root)."""
    return MqttAdapter(resource)
