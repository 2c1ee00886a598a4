"""Protocol-level readiness probes for scripts/servers (standard library only).

Why not just "is the port open": RabbitMQ, Kafka and Mosquitto all accept TCP
connections before they can serve a client (Kafka opens its socket before it has
caught up with the metadata log; RabbitMQ's management listener can answer 503 while
the node boots). Each probe speaks the first exchange of the real protocol and
succeeds only on the answer a client needs:

- ``amqp HOST PORT``: the AMQP 0-9-1 protocol header gets a Connection.Start frame;
- ``http URL USER PASSWORD``: HTTP GET answers 200 (RabbitMQ management API);
- ``kafka HOST PORT``: ApiVersions v0 answers error_code 0, then Metadata v1 lists a
  controller (the broker has joined its KRaft quorum);
- ``mqtt HOST PORT``: MQTT 3.1.1 CONNECT gets CONNACK with return code 0;
- ``https URL CAFILE [CERTFILE KEYFILE]``: HTTPS GET, server verified against CAFILE
  (optionally with a client certificate), answers 200 (the Kubernetes control plane's
  ``/readyz`` and ``/healthz``, which report "ok" only once every post-start hook ran).

Exit status 0 = ready, 1 = not (yet). Runs with any python3 (no venv needed), so the
script can start servers before the project is installed.
"""

from __future__ import annotations

import base64
import socket
import ssl
import struct
import sys
import urllib.request
from collections.abc import Callable

TIMEOUT = 3.0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def amqp(host: str, port: str) -> bool:
    with socket.create_connection((host, int(port)), TIMEOUT) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        head = _recv_exact(sock, 7)
        frame_type, _channel, _size = struct.unpack(">BHI", head)
        return bool(frame_type == 1)  # a method frame: Connection.Start


def http(url: str, user: str, password: str) -> bool:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    if not url.startswith(("http://", "https://")):
        return False
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        return bool(response.status == 200)


def https(url: str, cafile: str, certfile: str = "", keyfile: str = "") -> bool:
    if not url.startswith("https://"):
        return False
    context = ssl.create_default_context(cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile or None)
    with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as response:  # noqa: S310
        return bool(response.status == 200)


def _kafka_request(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    client_id = b"eventing-probe"
    header = struct.pack(">hhih", api_key, version, 1, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, size)[4:]  # strip the correlation id


def kafka(host: str, port: str) -> bool:
    with socket.create_connection((host, int(port)), TIMEOUT) as sock:
        reply = _kafka_request(sock, 18, 0, b"")  # ApiVersions v0
        if struct.unpack(">h", reply[:2])[0] != 0:
            return False
        (count,) = struct.unpack(">i", reply[2:6])
        ranges = {
            key: (low, high)
            for key, low, high in (
                struct.unpack(">hhh", reply[6 + 6 * i : 12 + 6 * i]) for i in range(count)
            )
        }
        low, high = ranges.get(3, (99, -1))
        if not low <= 1 <= high:
            return True  # no Metadata v1 to ask with; ApiVersions answering will do
        reply = _kafka_request(sock, 3, 1, struct.pack(">i", 0))  # Metadata v1, no topics
        (brokers,) = struct.unpack(">i", reply[:4])
        offset = 4
        for _ in range(brokers):
            offset += 4  # node id
            (host_len,) = struct.unpack(">h", reply[offset : offset + 2])
            offset += 2 + host_len + 4  # host, port
            (rack_len,) = struct.unpack(">h", reply[offset : offset + 2])
            offset += 2 + max(rack_len, 0)
        (controller,) = struct.unpack(">i", reply[offset : offset + 4])
        return bool(brokers > 0 and controller >= 0)


def mqtt(host: str, port: str) -> bool:
    client_id = b"eventing-probe"
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol 3.1.1, clean session, 10 s
    payload = struct.pack(">H", len(client_id)) + client_id
    remaining = len(variable) + len(payload)
    with socket.create_connection((host, int(port)), TIMEOUT) as sock:
        sock.sendall(bytes([0x10, remaining]) + variable + payload)
        connack = _recv_exact(sock, 4)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
        return connack[0] == 0x20 and connack[3] == 0


PROBES: dict[str, Callable[..., bool]] = {
    "amqp": amqp,
    "http": http,
    "https": https,
    "kafka": kafka,
    "mqtt": mqtt,
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in PROBES:
        print(f"usage: probe.py {{{'|'.join(PROBES)}}} ARGS...", file=sys.stderr)
        return 2
    try:
        return 0 if PROBES[argv[1]](*argv[2:]) else 1
    except (OSError, ValueError, struct.error):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
