"""One MQTT connection driven by paho on the asyncio loop, with back-pressure: when the
source holds ``high_water`` received, unacknowledged messages, the socket is no longer
read until it has taken them; nothing received is ever discarded.

Why paho directly, not aiomqtt: aiomqtt 2.5 hands messages to a bounded
``asyncio.Queue`` with ``put_nowait`` and *discards* what does not fit ("Message queue
is full. Discarding message."), and has no way to stop reading instead. A discarded
QoS 1 message is never acknowledged and occupies the server's in-flight window until
the next reconnect, so a server that sends more than the negotiated Receive Maximum
(Mosquitto 2.0.11, eclipse-mosquitto/mosquitto#2306) stalls the session silently. An
unbounded queue would only move the problem to memory. paho reads exactly one packet
per step and keeps no read-ahead buffer, so not calling ``loop_read`` leaves the
bytes in the kernel's socket buffer and TCP flow control stops the server: the bound
holds whatever the server does. (aiomqtt also needed reaching into its private
``_client`` for manual acknowledgement; here we own the paho client.)

A paused socket is not read for keep-alive either: a pause longer than about twice
the keep-alive (only when the store refuses for that long) ends in paho closing the
connection; the session then redelivers what was not acknowledged.

PUBLISH packets are decoded by our own decoder, not paho's (see
:mod:`sources.mqtt.paho`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from sources.mqtt.paho import Broken, Incoming, Paho

READS_PER_WAKEUP: Final = 64
"""Packets read per readiness callback before yielding to the loop."""


class MqttLost(Exception):
    """The connection is gone (or never came up): transient, reconnect."""


class MqttConnection:
    """A connected paho client: ``take`` received messages in arrival order, ``ack``
    them (in the same order), ``close``. ``held`` counts received QoS 1 messages not
    yet acknowledged."""

    def __init__(
        self,
        client: paho.Client,
        *,
        high_water: int,
        on_held: Callable[[int], None] = lambda held: None,
    ) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._queue: deque[Incoming] = deque()
        self._wake = asyncio.Event()
        self._lost: BaseException | None = None
        self._connack: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._fd = -1
        self._misc: asyncio.Task[None] | None = None
        self._writing = False
        self.high_water = max(1, high_water)
        self.paused = False
        self._broken: str | None = None
        self.pauses = 0
        self.held = 0
        self.acked = 0
        self._on_held = on_held
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        if isinstance(client, Paho):
            client.on_incoming = self._arrived

    # --- the consumer's side -------------------------------------------------------

    async def connect(
        self,
        host: str,
        port: int,
        *,
        keepalive: int,
        clean_start: bool | Literal[3],
        properties: Properties | None,
        timeout: float,
    ) -> None:
        """TCP (and TLS) connect in a thread (paho's connect blocks), then wait for
        the CONNACK on the loop."""
        self._client.connect_timeout = timeout
        connect = functools.partial(
            self._client.connect,
            host,
            port,
            keepalive,
            clean_start=clean_start,
            properties=properties,
        )
        try:
            async with asyncio.timeout(timeout):
                await self._loop.run_in_executor(None, connect)
                code = await self._connack  # _lose fails it
        except TimeoutError:
            raise MqttLost(f"no CONNACK from {host}:{port} within {timeout:.0f}s") from None
        if code.is_failure:
            raise MqttLost(f"connection refused: {code}")

    async def subscribe(
        self, topics: Sequence[tuple[str, SubscribeOptions | int]], timeout: float
    ) -> list[ReasonCode]:
        """Subscribe and wait for the SUBACK; a refused filter raises :class:`MqttLost`."""
        rc, mid = self._client.subscribe(list(topics))  # type: ignore[arg-type]
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttLost(f"subscribe failed: {paho.error_string(rc)}")
        future: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subacks[mid] = future
        try:
            async with asyncio.timeout(timeout):
                codes = await future
        except TimeoutError:
            raise MqttLost(f"no SUBACK within {timeout:.0f}s") from None
        refused = [str(c) for c in codes if c.is_failure]
        if refused:
            raise MqttLost(f"subscription refused: {', '.join(refused)}")
        return codes

    async def take(self, limit: int) -> list[Incoming]:
        """Up to ``limit`` received messages, waiting for at least one. Raises
        :class:`MqttLost` once the connection is gone: messages still queued then
        could not be acknowledged, and the server sends them again."""
        while not self._queue:
            if self._lost is not None:
                raise MqttLost(str(self._lost) or type(self._lost).__name__)
            if self._broken is not None:
                raise MqttLost(f"a PUBLISH that cannot be acknowledged: {self._broken}")
            self._wake.clear()
            await self._wake.wait()
        if self._lost is not None:
            raise MqttLost(str(self._lost) or type(self._lost).__name__)
        batch = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
        if self.paused and self._broken is None and len(self._queue) < self.high_water // 2 + 1:
            self._resume()
        return batch

    def ack(self, mid: int, qos: int) -> bool:
        """PUBACK one message (call in arrival order); False when it could not be sent
        (the connection is gone: the server will send the message again)."""
        if qos == 0:
            return False
        if self._lost is not None or self._fd < 0:
            return False
        if self._client.ack(mid, qos) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self.held -= 1
        self.acked += 1
        self._on_held(self.held)
        return True

    async def close(self, timeout: float = 2.0) -> None:
        """DISCONNECT (the session stays on the server) and close the socket."""
        if self._lost is None and self._fd >= 0:
            self._client.disconnect()
            self._flush()
            self._resume()  # read the server's close
            try:
                async with asyncio.timeout(timeout):
                    while self._lost is None:
                        self._wake.clear()
                        await self._wake.wait()
            except TimeoutError:
                pass
        self._lose(MqttLost("closed"))
        sock = self._client.socket()
        self._forget_socket()
        if sock is not None:
            sock.close()
        if self._misc is not None:
            self._misc.cancel()
            await asyncio.gather(self._misc, return_exceptions=True)

    # --- reading with back-pressure ------------------------------------------------

    def _arrived(self, message: Incoming | Broken) -> None:
        if isinstance(message, Broken):  # take what came before it, then end
            self._broken = message.reason
            self._pause()
            self._wake.set()
            return
        self._queue.append(message)
        if message.qos > 0:
            self.held += 1
            self._on_held(self.held)
        self._wake.set()
        if len(self._queue) >= self.high_water:
            self._pause()

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.pauses += 1
            if self._fd >= 0:
                self._loop.remove_reader(self._fd)

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            if self._fd >= 0:
                self._loop.add_reader(self._fd, self._readable)
                self._loop.call_soon(self._readable)  # TLS may hold decrypted bytes

    def _readable(self) -> None:
        try:
            for _ in range(READS_PER_WAKEUP):
                before = len(self._queue)
                rc = self._client.loop_read()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._lose(MqttLost(f"connection lost: {paho.error_string(rc)}"))
                    return
                if self.paused or self._fd < 0:
                    return
                sock = self._client.socket()
                pending = getattr(sock, "pending", None)
                if len(self._queue) == before and not (pending is not None and pending() > 0):
                    return
        except Exception as exc:  # a packet paho cannot read: the connection is unusable
            self._lose(MqttLost(f"connection lost: {type(exc).__name__}: {exc}"))
            sock = self._client.socket()
            self._forget_socket()
            if sock is not None:
                sock.close()

    def _lose(self, exc: BaseException) -> None:
        if self._lost is None:
            self._lost = exc
        futures: list[asyncio.Future[Any]] = [self._connack, *self._subacks.values()]
        for future in futures:
            if not future.done():
                future.set_exception(MqttLost(str(self._lost)))
                future.exception()  # retrieved: nobody may be waiting any more
        self._wake.set()

    def _forget_socket(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = -1

    # --- paho callbacks ------------------------------------------------------------

    def _call(self, function: Callable[..., None], *args: Any) -> None:
        """Run on the loop: paho calls some callbacks from the connecting thread."""
        if threading.get_ident() == self._thread:
            function(*args)
        else:
            self._loop.call_soon_threadsafe(function, *args)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        if not self._connack.done():
            self._connack.set_result(code)

    def _on_disconnect(self, _c: Any, _u: Any, flags: Any, code: ReasonCode, _p: Any) -> None:
        if getattr(flags, "is_disconnect_packet_from_server", False):
            self._lose(MqttLost(f"the server disconnected: {code}"))
        else:  # paho's reason is vague here; the caller's own error (read, keep-alive) wins
            self._loop.call_soon_threadsafe(self._lose, MqttLost("connection lost"))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(codes)

    def _on_socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        self._call(self._opened, sock)

    def _opened(self, sock: Any) -> None:
        if self._lost is not None:  # connected after the caller gave up
            sock.close()
            return
        self._fd = fd = sock.fileno()
        if not self.paused:
            self._loop.add_reader(fd, self._readable)
        self._misc = self._loop.create_task(self._misc_loop(), name="mqtt keep-alive")

    def _on_socket_close(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._call(self._forget_socket)
        # later, so that the reason paho reports right after (on_disconnect) wins
        self._loop.call_soon_threadsafe(self._lose, MqttLost("connection closed"))

    def _on_register_write(self, _c: Any, _u: Any, _sock: Any) -> None:
        if not self._writing:  # acks of a whole batch go out in one write
            self._writing = True
            self._loop.call_soon_threadsafe(self._flush)

    def _on_unregister_write(self, _c: Any, _u: Any, _sock: Any) -> None:
        if self._fd >= 0:
            self._call(self._stop_writing, self._fd)

    def _stop_writing(self, fd: int) -> None:
        self._loop.remove_writer(fd)

    def _flush(self) -> None:
        """Write what paho queued; wait for the socket when its buffer is full."""
        if self._fd < 0:
            self._writing = False
            return
        try:
            rc = self._client.loop_write()
        except Exception as exc:
            rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
            self._lose(MqttLost(f"write failed: {type(exc).__name__}: {exc}"))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._writing = False
            self._lose(MqttLost(f"write failed: {paho.error_string(rc)}"))
        elif self._client.want_write() and self._fd >= 0:
            self._loop.add_writer(self._fd, self._flush)
        else:
            self._writing = False

    async def _misc_loop(self) -> None:
        """paho's keep-alive: PINGREQ when idle, close when the server went silent."""
        while True:
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lose(MqttLost("keep-alive timed out"))
                return
            await asyncio.sleep(1)
