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
import shutil
import signal
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path

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
        async with asyncio.timeout(10):
            header = (await self._reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                byte = (await self._reader.readexactly(1))[0]
                length += (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            return header & 0xF0, await self._reader.readexactly(length)


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


class PrivateMosquitto:
    """A Mosquitto of our own (persistence on, like ``scripts/servers``'s) that a test
    may stop and restart without disturbing the shared one."""

    def __init__(self, directory: Path) -> None:
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
            "max_queued_messages 1000000\n"
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
