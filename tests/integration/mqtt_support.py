"""Helpers for the MQTT source tests: a raw-socket MQTT 5 publisher (to send what
client libraries refuse to build, such as a user property that paho cannot decode),
a private Mosquitto on its own loopback port (restarting the shared one would disturb
other tests), and many QoS 1 publishers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import random
import resource
import shutil
import signal
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt

from eventing.workloads.replica import free_port

CONNACK, PUBACK = 0x20, 0x40


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def user_property(name: bytes, value: bytes) -> bytes:
    """An MQTT 5 User Property, its bytes as given (no validation)."""
    return b"\x26" + _string(name) + _string(value)


class RawPublisher:
    """MQTT 5 over a plain socket, QoS 1, one PUBLISH at a time: ``publish`` returns the
    server's answer (``PUBACK``, or ``None`` when the server closed the connection)."""

    def __init__(
        self, host: str, port: int, client_id: str, *, clean_start: bool = True, expiry: int = 0
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.clean_start, self.expiry = clean_start, expiry
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._mid = 0

    async def __aenter__(self) -> RawPublisher:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        properties = b"\x11" + struct.pack("!I", self.expiry) if self.expiry else b""
        flags = 0x02 if self.clean_start else 0x00
        connect = _string(b"MQTT") + bytes([5, flags]) + struct.pack("!H", 30)
        connect += _varint(len(properties)) + properties
        self._writer.write(_packet(0x10, connect + _string(self.client_id.encode())))
        kind, _ = await self._read()
        assert kind == CONNACK, f"expected CONNACK, got {kind:#x}"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError):  # the server may have closed it
                self._writer.write(_packet(0xE0, b"\x00\x00"))  # DISCONNECT, normal
                self._writer.close()
                await self._writer.wait_closed()

    async def publish(self, topic: bytes, payload: bytes, properties: bytes = b"") -> int | None:
        assert self._writer is not None
        self._mid += 1
        body = _string(topic) + struct.pack("!H", self._mid) + _varint(len(properties))
        self._writer.write(_packet(0x32, body + properties + payload))
        try:
            kind, _ = await self._read()
        except asyncio.IncompleteReadError:
            return None
        return kind

    async def _read(self) -> tuple[int, bytes]:
        assert self._reader is not None
        return await _read_packet(self._reader, timeout=10)


async def publish_all(
    host: str, port: int, topics: Iterable[str], per_publisher: int, prefix: str
) -> list[str]:
    """One QoS 1 publisher per topic, all at once, each sending ``per_publisher``
    messages; returns every payload the server acknowledged."""

    async def one(index: int, topic: str) -> list[str]:
        sent = []
        async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            for n in range(per_publisher):
                payload = f"{prefix}-{index}-{n}"
                await client.publish(topic, payload.encode(), qos=1, timeout=30)
                sent.append(payload)
        return sent

    results = await asyncio.gather(*(one(i, t) for i, t in enumerate(topics)))
    return [payload for sent in results for payload in sent]


async def remove_sessions(url: str, client_ids: Iterable[str]) -> None:
    """End persistent sessions on the server (clean start, session expiry 0)."""
    parts = urlsplit(url)
    for client_id in client_ids:
        async with aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
        ):
            pass


class PrivateMosquitto:
    """A Mosquitto of our own (persistence on, like ``scripts/servers``'s) that a test
    may stop and restart without disturbing the shared one."""

    def __init__(self, directory: Path, *, max_queued_messages: int = 1_000_000) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            raise AssertionError("mosquitto is not installed: run scripts/servers up mosquitto")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        (directory / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory / 'data'}/\n"
            "autosave_interval 1\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            f"max_queued_messages {max_queued_messages}\n"
            # started as root, Mosquitto would switch to user "mosquitto" and could not
            # write its persistence file here
            f"user {getpass.getuser()}\n"
        )

    async def start(self, timeout: float = 15.0) -> None:
        log = (self.directory / "mosquitto.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", str(self.directory / "mosquitto.conf"), stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError(f"private mosquitto did not start: {self.log()}") from None
                await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Mosquitto saves its persistence file on the way out) and wait."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class Fleet:
    """``devices`` simulated devices, each on its own MQTT 5 connection (raw sockets:
    1,000 paho clients would cost more CPU than the system under test), publishing
    one QoS 1 message every ``period`` seconds on ``<prefix>/<device>/telemetry``.

    A message counts as ``confirmed`` once the server's PUBACK arrived. A device whose
    connection fails (a server restart) reconnects after a random 0.5-2 s and goes on
    with the next number: an unconfirmed message may still have arrived, so the
    delivered set may hold more than ``confirmed``."""

    def __init__(self, host: str, port: int, prefix: str, devices: int, period: float) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.devices, self.period = devices, period
        self.confirmed: set[str] = set()
        self.connected = 0
        self.reconnects = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for index in range(self.devices):
            self._tasks.append(
                asyncio.create_task(self._device(index), name=f"fleet device {index}")
            )

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _device(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + self.period * index / self.devices  # spread over a period
        tick, n = 0, 0
        while not self._stop.is_set():
            writer: asyncio.StreamWriter | None = None
            try:
                await asyncio.sleep(max(0.0, start + tick * self.period - loop.time()))
                reader, writer = await asyncio.open_connection(self.host, self.port)
                await self._connect(reader, writer, f"{self.prefix}-dev{index}")
                self.connected += 1
                try:
                    while not self._stop.is_set():
                        payload = f"{self.prefix}-{index}-{n}"  # unique: the test's key
                        n += 1
                        await self._publish(reader, writer, index, n, payload)
                        self.confirmed.add(payload)
                        tick += 1
                        await asyncio.sleep(max(0.0, start + tick * self.period - loop.time()))
                finally:
                    self.connected -= 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                self.reconnects += 1
                tick += 1
                await asyncio.sleep(random.uniform(0.5, 2.0))
            finally:
                if writer is not None:
                    writer.close()

    async def _connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_id: str
    ) -> None:
        connect = _string(b"MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + _varint(0)
        writer.write(_packet(0x10, connect + _string(client_id.encode())))
        kind, body = await _read_packet(reader)
        if kind != CONNACK or body[1] != 0:
            raise ConnectionError(f"connect refused: {kind:#x} {body!r}")

    async def _publish(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        index: int,
        n: int,
        payload: str,
    ) -> None:
        mid = n % 65535 + 1
        topic = f"{self.prefix}/d{index}/telemetry".encode()
        body = _string(topic) + struct.pack("!H", mid) + _varint(0) + payload.encode()
        writer.write(_packet(0x32, body))
        kind, answer = await _read_packet(reader)
        if kind != PUBACK or struct.unpack_from("!H", answer)[0] != mid:
            raise ConnectionError(f"expected PUBACK {mid}, got {kind:#x} {answer!r}")


async def _read_packet(reader: asyncio.StreamReader, timeout: float = 30.0) -> tuple[int, bytes]:
    async with asyncio.timeout(timeout):
        header = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return header & 0xF0, await reader.readexactly(length)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def raise_open_file_limit(needed: int) -> None:
    """Each device is a socket here and in Mosquitto (which inherits this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise AssertionError(
            f"the open-file limit is {hard}; {needed} are needed (ulimit -n {needed})"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class ScriptedServer:
    """A minimal MQTT 5 server on loopback that, like some servers, does not validate
    what it forwards: after CONNECT and a SUBSCRIBE (one filter) it sends its scripted
    QoS 1 PUBLISH packets, and on every new connection it first resends each one not
    acknowledged yet, as a persistent session does. ``acked`` lists the packet ids of
    the PUBACKs it received, in order."""

    def __init__(self, publishes: Iterable[tuple[int, bytes]]) -> None:
        self.publishes = dict(publishes)  # packet id -> PUBLISH body (after the header)
        self.acked: list[int] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            kind, _ = await _read_packet(reader)
            assert kind == 0x10, f"expected CONNECT, got {kind:#x}"
            writer.write(bytes([CONNACK, 3, 0x01, 0x00, 0x00]))  # session present
            kind, body = await _read_packet(reader)
            assert kind == 0x80, f"expected SUBSCRIBE, got {kind:#x}"
            writer.write(_packet(0x90, body[:2] + b"\x00\x01"))  # SUBACK, QoS 1 granted
            for mid, publish in self.publishes.items():
                if mid not in self.acked:
                    writer.write(_packet(0x32, publish))
            while True:
                kind, body = await _read_packet(reader, timeout=120)
                if kind == PUBACK:
                    self.acked.append(struct.unpack_from("!H", body)[0])
                elif kind == 0xC0:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 0xE0:  # DISCONNECT
                    return
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


def publish_body(topic: bytes, mid: int, properties: bytes, payload: bytes) -> bytes:
    """A QoS 1 PUBLISH after its fixed header, bytes as given (no validation)."""
    return _string(topic) + struct.pack("!H", mid) + _varint(len(properties)) + properties + payload
