"""MqttSource adapter: subscribe with QoS 1 in a persistent session and put each
message into the broker as a CloudEvent, sending PUBACK only after the broker stored it.

The connection is paho driven on the asyncio loop by :mod:`sources.mqtt.client`, in
manual-acknowledgement mode: each message is acknowledged, in arrival order (MQTT
requires PUBACKs in order), after ``emit`` returned. That module never discards a
received message: when the source holds ``4 x receiveMaximum`` unacknowledged
messages it stops reading the socket (TCP back-pressure) until it has taken them, so
a server that sends more than the Receive Maximum it was given cannot make it drop
one (issue 15).

MQTT has no negative acknowledgement and forbids resending on an open connection, so
when ``emit`` raises, the source keeps the unacknowledged batch and retries ``emit``
with jittered backoff (when the store fills part-way through a batch, the prefix that
fit is acknowledged and only the rest is kept: :func:`sources.support.emitting.emit_prefix`);
if the process dies meanwhile, the server redelivers the unacknowledged messages to
the persistent session on the next connect.

Messages that cannot become events (over the size limit, an invalid CloudEvent, or a
PUBLISH that is not valid MQTT: :class:`sources.mqtt.packets.Poison`) are
acknowledged and counted in ``health.refused`` (poison also in ``drops["poison"]``):
MQTT cannot reject them, and leaving them unacknowledged would stall the session's
in-flight window. Retained messages are sent by the server only when a subscription
is new (MQTT 5 retain handling 1), so a reconnect does not replay them.

Health: ``held`` is the number of received, unacknowledged messages; when some are
held and nothing was acknowledged for :attr:`MqttAdapter.stall_after` seconds the
state is ``stalled`` (counted in ``stalls``) until the next acknowledgement. The
reconnect backoff is reset only once a connection acknowledged a message, so a
connection that breaks right after subscribing (a message that cannot be skipped, a
second client taking the session) is retried ever more slowly, not in a hot loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Final

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from eventing.errors import InvalidEventError
from eventing.events import Event
from sources.mqtt.binding import message_to_event
from sources.mqtt.client import MqttConnection, MqttLost
from sources.mqtt.model import MqttSourceResource
from sources.mqtt.packets import Poison
from sources.mqtt.paho import Incoming, new_paho
from sources.support.base import Emit, SourceHealth
from sources.support.emitting import emit_prefix, refuse, too_large
from sources.support.reconnect import Backoff, describe, keep_connected
from sources.support.source_spec import apply_overrides, source_path

log = logging.getLogger(__name__)

MODEL = MqttSourceResource
TIMEOUT: Final = 10.0
TRANSIENT: Final = (MqttLost, OSError, TimeoutError)
HIGH_WATER: Final = 4
"""Received, unacknowledged messages held before reading stops, x receiveMaximum."""
STALL_AFTER: Final = 30.0


class MqttAdapter:
    """The running form of one ``MqttSource``."""

    def __init__(self, resource: MqttSourceResource) -> None:
        self.resource = resource
        self.name = f"mqttsource/{resource.key}"
        self.health = SourceHealth(self.name, "MqttSource")
        self.drops: dict[str, int] = {}
        self.stall_after = STALL_AFTER
        self.backoff = Backoff()
        self._pauses = 0  # of connections that are gone
        self._connection: MqttConnection | None = None
        self._source = source_path(resource.namespace, "mqttsources", resource.name)
        self._client_id = resource.client_id
        self._limit = resource.max_message_bytes
        self._store_backoff = Backoff(initial=0.1, maximum=5.0)
        self._endpoint = resource.endpoint()
        self._progress_at = time.monotonic()
        self._failing = False
        self._error_before_stall: str | None = None

    @property
    def pauses(self) -> int:
        """Times reading stopped because ``4 x receiveMaximum`` messages were held."""
        current = self._connection.pauses if self._connection is not None else 0
        return self._pauses + current

    async def run(self, emit: Emit) -> None:
        async def session() -> None:
            await self._session(emit)

        watch = asyncio.create_task(self._watch(), name=f"{self.name} stall watch")
        try:
            await keep_connected(
                self.health, session, transient=TRANSIENT, backoff=self.backoff, log=log
            )
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def _connect(self) -> MqttConnection:
        spec = self.resource.spec
        host, port, user, password, tls = self._endpoint
        v5 = spec.protocol_version == "5"
        client = new_paho(self._client_id, v5=v5, clean_session=None if v5 else False)
        if user is not None:
            client.username_pw_set(user, password)
        if tls:
            client.tls_set_context(ssl.create_default_context())
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = int(spec.session_expiry)
            properties.ReceiveMaximum = spec.receive_maximum
        connection = MqttConnection(
            client, high_water=spec.receive_maximum * HIGH_WATER, on_held=self._held
        )
        try:
            await connection.connect(
                host,
                port,
                keepalive=int(spec.keep_alive),
                clean_start=False if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
                timeout=TIMEOUT,
            )
            if v5:
                options = SubscribeOptions(qos=spec.qos, retainHandling=1)
                await connection.subscribe([(t, options) for t in spec.topics], TIMEOUT)
            else:
                await connection.subscribe([(t, spec.qos) for t in spec.topics], TIMEOUT)
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _session(self, emit: Emit) -> None:
        connection = self._connection = await self._connect()
        try:
            self.health.set_state("connected")
            limit = self.resource.spec.receive_maximum
            while True:
                batch = await connection.take(limit)
                await self._handle(connection, batch, emit)
        finally:
            self._pauses += connection.pauses
            self._connection = None
            self.health.held = 0  # the server redelivers them to the session
            await connection.close()

    async def _handle(self, connection: MqttConnection, batch: list[Incoming], emit: Emit) -> None:
        items: list[tuple[int, Event]] = []  # (index in the batch, event)
        for index, message in enumerate(batch):
            self.health.received += 1
            event = self._decode(message)
            if event is not None:
                items.append((index, event))
        acked = 0  # batch[:acked] are acknowledged

        def ack_until(end: int) -> None:
            nonlocal acked
            sent = 0
            for message in batch[acked:end]:  # PUBACK in arrival order, refused included
                sent += connection.ack(message.mid, message.qos)
            if sent:
                self._progressed()
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
            self._failing = True
            if self.health.state == "stalled":  # keep saying so; restored on progress
                self._error_before_stall = f"emit failed: {error}"
            else:
                self.health.last_error = f"emit failed: {error}"
            delay = self._store_backoff.next()
            log.warning("%s: emit failed (%s); retrying in %.1fs", self.name, error, delay)
            await asyncio.sleep(delay)
        self._store_backoff.reset()
        ack_until(len(batch))
        if self._failing:  # the store took everything again: the old error is history
            self._failing = False
            if self.health.state in ("connected", "stalled"):
                self.health.set_state("connected")

    def _held(self, count: int) -> None:
        if count > 0 and self.health.held == 0:
            self._progress_at = time.monotonic()  # the stall clock starts now
        self.health.held = count

    def _progressed(self) -> None:
        """Messages were acknowledged: real progress."""
        self._progress_at = time.monotonic()
        self.backoff.reset()
        if self.health.state == "stalled":
            self.health.set_state("connected")
            self.health.last_error = self._error_before_stall

    async def _watch(self) -> None:
        """Report a stall: messages held and none acknowledged for ``stall_after``."""
        while True:
            await asyncio.sleep(min(1.0, self.stall_after / 4))
            idle = time.monotonic() - self._progress_at
            held = self.health.held
            if held > 0 and idle >= self.stall_after and self.health.state == "connected":
                why = f"stalled: {held} unacknowledged messages held, none stored for {idle:.0f}s"
                if self.health.last_error:
                    why += f" (last error: {self.health.last_error})"
                self._error_before_stall = self.health.last_error
                self.health.set_state("stalled", why[:500])
                self.health.stalls += 1
                log.warning("%s: %s", self.name, why)

    def _decode(self, message: Incoming) -> Event | None:
        if isinstance(message, Poison):
            self.drops["poison"] = self.drops.get("poison", 0) + 1
            why = InvalidEventError(f"not a valid MQTT PUBLISH: {message.reason}")
            refuse(self.health, log, f"message on {message.topic!r} refused", why)
            return None
        where = f"message on {message.topic[:120]!r}"
        error = too_large(len(message.payload), self._limit)
        if error is not None:
            refuse(self.health, log, f"{where} refused", error)
            return None
        try:
            event = message_to_event(message, self._source, self._client_id)
        except InvalidEventError as exc:
            refuse(self.health, log, f"{where} is not a valid CloudEvent", exc)
            return None
        apply_overrides(event.attributes, self.resource.spec.ce_overrides)
        return event


def build(resource: MqttSourceResource) -> MqttAdapter:
    """Construct the adapter for a validated ``MqttSource`` (composition root)."""
    return MqttAdapter(resource)
