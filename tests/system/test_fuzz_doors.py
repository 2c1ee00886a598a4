"""A bounded fuzzing run against the doors (issue 11): structure-aware mutations of
broker ingress requests (binary, structured, batch; headers, bodies, encodings) and
of webhook requests (bearer, HMAC, GitHub), sent as raw HTTP/1.1 over loopback.

For every request: an answer within a deadline; no 5xx other than 503; nothing stored
unless the answer was 2xx (every request carries ids of its own, and the subscriber
must see exactly the ids that were accepted). Across the run: the serving process's
memory stays flat. The run is seeded (``FUZZ_SEED`` to replay one) and bounded by a
count, so it takes the same few seconds in every ``make test``.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import os
import random
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventing.app.runtime import Running
from tests.support.mesh import broker_doc, manifests, run_system, settled, trigger_doc
from tests.support.subscriber import RecordingSubscriber
from tests.support.wire import open_raw, read_response

SEED = int(os.environ.get("FUZZ_SEED", "1111"))
ROUNDS = 240
DEADLINE = 15.0
MEMORY_GROWTH_LIMIT = 64 * 1024 * 1024
SECRET = "fuzz-secret"
HOOKS = """---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: bearer}
spec:
  path: /hooks/fuzz/bearer
  auth: {bearer: {secretKeyRef: {name: fuzz, key: token}}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: signed}
spec:
  path: /hooks/fuzz/signed
  auth: {hmac: {secretKeyRef: {name: fuzz, key: token}}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: repo}
spec:
  ownerAndRepository: o/r
  eventTypes: ["*"]
  secretToken: {secretKeyRef: {name: fuzz, key: token}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""


@dataclass
class Request:
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    ids: list[str]
    """Ids of the events this request would store if accepted."""


def _sign(body: bytes) -> bytes:
    return b"sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode()


def _valid(rng: random.Random, n: int) -> Request:
    """A valid request of a random kind; mutations start from it."""
    eid = f"f{n}"
    kind = rng.choice(["binary", "structured", "batch", "bearer", "signed", "github"])
    data = json.dumps({"n": n, "pad": "x" * rng.randrange(0, 200)}).encode()
    if kind == "binary":
        headers = [
            (b"ce-specversion", b"1.0"), (b"ce-id", eid.encode()), (b"ce-source", b"/fuzz"),
            (b"ce-type", b"fuzz.t"), (b"Content-Type", b"application/json"),
        ]  # fmt: skip
        return Request("/default/default", headers, data, [eid])
    if kind == "structured":
        event = {"specversion": "1.0", "id": eid, "source": "/f", "type": "t", "data": {"n": n}}
        body = json.dumps(event).encode()
        headers = [(b"Content-Type", b"application/cloudevents+json")]
        return Request("/default/default", headers, body, [eid])
    if kind == "batch":
        ids = [f"{eid}-{i}" for i in range(rng.randrange(1, 4))]
        entries = [{"specversion": "1.0", "id": i, "source": "/f", "type": "t"} for i in ids]
        headers = [(b"Content-Type", b"application/cloudevents-batch+json")]
        return Request("/default/default", headers, json.dumps(entries).encode(), ids)
    if kind == "bearer":
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Authorization", f"Bearer {SECRET}".encode()),
            (b"Idempotency-Key", eid.encode()),
        ]
        return Request("/hooks/fuzz/bearer", headers, data, [eid])
    if kind == "signed":
        headers = [
            (b"Content-Type", b"application/json"),
            (b"X-Hub-Signature-256", _sign(data)),
            (b"Idempotency-Key", eid.encode()),
        ]
        return Request("/hooks/fuzz/signed", headers, data, [eid])
    headers = [
        (b"Content-Type", b"application/json"),
        (b"X-GitHub-Event", b"push"),
        (b"X-GitHub-Delivery", eid.encode()),
        (b"X-Hub-Signature-256", _sign(data)),
    ]
    return Request("/webhooks/default/repo", headers, data, [eid])


_JUNK = [b"\xff\xfe", b"\x00", b"\xc3\x28", b"%", b'"', b"\\", b"{", b"9" * 400, b"\t", b" "]


def _mutate(rng: random.Random, request: Request) -> Request:
    """One to three structure-aware mutations of a valid request."""
    headers = list(request.headers)
    body = request.body
    for _ in range(rng.randrange(1, 4)):
        choice = rng.randrange(12)
        if choice == 0 and headers:
            headers.pop(rng.randrange(len(headers)))
        elif choice == 1 and headers:
            headers.append(rng.choice(headers))  # a duplicate
        elif choice == 2 and headers:
            i = rng.randrange(len(headers))
            name, value = headers[i]
            cut = rng.randrange(len(value) + 1)
            headers[i] = (name, value[:cut] + rng.choice(_JUNK) + value[cut:])
        elif choice == 3:
            coding = rng.choice([b"gzip", b"deflate", b"br", b"gzip, gzip", b"identity", b"x"])
            headers.append((b"Content-Encoding", coding))
            if coding == b"gzip" and rng.random() < 0.7:
                body = gzip.compress(body)
                if rng.random() < 0.5:
                    body = body[: rng.randrange(len(body))]  # truncated
        elif choice == 4 and body:
            cut = rng.randrange(len(body))
            body = body[:cut]
        elif choice == 5 and body:
            b = bytearray(body)
            for _ in range(rng.randrange(1, 5)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            body = bytes(b)
        elif choice == 6:
            body = b"[" * rng.choice([10, 1000, 100_000]) + b"]" * rng.choice([0, 10])
        elif choice == 7:
            body = json.dumps({"id": 10 ** rng.randrange(1, 400), "x": [1e308] * 3}).encode()
            body = body.replace(b"1e+308", rng.choice([b"1e400", b"Infinity", b"NaN"]))
        elif choice == 8:
            ctype = rng.choice(
                [b"text/plain", b"application/cloudevents+xml", b"", b"application/json; x=\xff"]
            )
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            headers.append((b"Content-Type", ctype))
        elif choice == 9:
            headers.append((b"ce-" + rng.choice([b"ID", b"x" * 300, b"sp ace"]), b"v"))
        elif choice == 10:
            headers.append((b"X-Junk", bytes(rng.randrange(32, 127) for _ in range(5000))))
        else:
            body = body * rng.randrange(2, 50)
    return Request(request.path, headers, body, request.ids)


def _raw(request: Request, host: str) -> bytes:
    lines = [f"POST {request.path} HTTP/1.1".encode(), f"Host: {host}".encode()]
    lines += [k + b": " + v.replace(b"\r", b"").replace(b"\n", b"") for k, v in request.headers]
    lines.append(f"Content-Length: {len(request.body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.body


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _system(tmp_path: Path, workers: int, url: str) -> AbstractAsyncContextManager[Running]:
    text = manifests(broker_doc(), trigger_doc("all", f"{url}/all")) + HOOKS
    return run_system(
        tmp_path / "manifests",
        text,
        data_dir=tmp_path / "data",
        drain_timeout=2.0,
        ingress_workers=workers,
    )


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "workers"])
async def test_mutated_requests_are_answered_bounded_and_stored_only_when_accepted(
    workers: int,
    tmp_path: Path,
    subscriber: RecordingSubscriber,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTING_SECRET_FUZZ_TOKEN", SECRET)
    rng = random.Random(SEED + workers)
    async with _system(tmp_path, workers, subscriber.url) as system:
        host = system.ingress_url.removeprefix("http://")
        served_by = os.getpid()
        if system.workers is not None:
            proc = system.workers.procs[0]
            assert proc is not None
            served_by = proc.pid
        accepted = 0
        baseline = 0
        for n in range(ROUNDS):
            if n == ROUNDS // 4:
                baseline = _rss(served_by)
            valid = _valid(rng, n)
            request = valid if rng.random() < 0.2 else _mutate(rng, valid)
            reader, writer = await open_raw(system.ingress_url)
            try:
                writer.write(_raw(request, host))
                await writer.drain()
                async with asyncio.timeout(DEADLINE):
                    response = await read_response(reader)
            finally:
                writer.close()
            assert response is not None, f"no answer (seed {SEED}, request {n})"
            status = response.status
            assert status < 500 or status == 503, (n, status, response.body[:300])
            if status in (202, 207) and b'"results"' in response.body:
                accepted += json.loads(response.body)["accepted"]
            elif status == 202:
                accepted += 1
        growth = _rss(served_by) - baseline
        assert growth < MEMORY_GROWTH_LIMIT, f"memory grew by {growth} bytes"
        assert accepted, "the run accepted nothing: the mutations are too aggressive"
        await settled(system)  # every stored event delivered
        # Nothing stored that was not accepted (with 2xx), nothing accepted and lost.
        assert len(subscriber.received) == accepted
