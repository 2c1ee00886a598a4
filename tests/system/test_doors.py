"""Faults found by probing the doors as an attacker would (issue 11): each request here
once went unanswered, or stopped all ingest, and must now get its documented answer
within a deadline, in both ingress modes (in the main process and in worker processes).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import sqlite3
import sys
import zlib
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from eventing.app.runtime import Running, RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.broker import sqlite_rows
from eventing.events import Event
from eventing.ingress.server import IngressSettings
from tests.support.mesh import (
    broker_doc,
    broker_url,
    ce_headers,
    manifests,
    post,
    run_system,
    trigger_doc,
    wait_until,
)
from tests.support.subscriber import Answer, RecordingSubscriber
from tests.support.wire import open_raw, raw_exchange, read_response

TOKEN = "door-token"
SECRETS = {
    "EVENTING_SECRET_GL_TOKEN": TOKEN,
    "EVENTING_SECRET_HOOK_TOKEN": TOKEN,
    "EVENTING_SECRET_GH_SECRET": TOKEN,
}

GITLAB = """apiVersion: sources.knative.dev/v1alpha1
kind: GitLabSource
metadata: {name: project}
spec:
  projectUrl: https://gitlab.example.com/group/app
  secretToken: {secretKeyRef: {name: gl, key: token}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata: {name: hook}
spec:
  path: /hooks/default/bearer
  auth: {bearer: {secretKeyRef: {name: hook, key: token}}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""

GITHUB = """apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: repo}
spec:
  ownerAndRepository: Codertocat/Hello-World
  eventTypes: ["*"]
  secretToken: {secretKeyRef: {name: gh, key: secret}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""

Runner = Callable[..., AbstractAsyncContextManager[Running]]


def _runner(
    tmp_path: Path, workers: int, admin_token: bool = False, allowed: tuple[str, ...] = ()
) -> Runner:
    def running(text: str, **ingress: Any) -> AbstractAsyncContextManager[Running]:
        return run_system(
            tmp_path / "manifests",
            text,
            ingress=IngressSettings(**ingress),
            data_dir=tmp_path / "data",
            drain_timeout=2.0,
            ingress_workers=workers,
            admin_token=admin_token,
            admin_allowed_hosts=allowed,
        )

    return running


@pytest.fixture(params=[0, 1], ids=["in-process", "workers"])
def run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Runs the system with the ingress in the main process, then in a worker."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return _runner(tmp_path, request.param)


@pytest.fixture
def run_workers(tmp_path: Path) -> Runner:
    return _runner(tmp_path, 1)


def _raw(path: str, host: str, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), f"Host: {host}".encode()]
    lines += [name + b": " + value for name, value in headers]
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/webhooks/default/project", b"X-Gitlab-Token"),
        ("/hooks/default/bearer", b"Authorization"),
    ],
    ids=["gitlab-token", "bearer"],
)
async def test_a_non_utf8_token_is_refused_with_401_not_left_hanging(
    run: Runner, path: str, header: bytes
) -> None:
    async with run(manifests(broker_doc()) + "---\n" + GITLAB) as system:
        hook = next(s for s in system.sources if getattr(s, "path", None) == path)
        assert hook is not None
        value = b"\xff\xfe-token" if header != b"Authorization" else b"Bearer \xff\xfe"
        request = _raw(
            path,
            system.ingress_url.removeprefix("http://"),
            [
                (b"Content-Type", b"application/json"),
                (b"X-Gitlab-Event", b"Push Hook"),
                (header, value),
            ],
            b"{}",
        )
        response = await raw_exchange(system.ingress_url, request, timeout=15.0)
        assert response is not None
        assert response.status == 401, response
        # and the server still answers everything else
        async with aiohttp.ClientSession() as http:
            status, _ = await post(http, broker_url(system), ce_headers("after"))
            assert status == 202


@pytest.mark.parametrize(
    "ids", [[99999999999999999999999], [-(2**70)], [2**63]], ids=["huge", "negative", "2^63"]
)
async def test_a_huge_dead_letter_id_is_a_400_and_the_writer_lives_on(
    run: Runner, ids: list[int]
) -> None:
    async with run(manifests(broker_doc())) as system, aiohttp.ClientSession() as http:
        async with http.post(f"{system.admin_url}/v1/dlq/delete", json={"ids": ids}) as r:
            assert r.status == 400, await r.text()
        async with http.post(f"{system.admin_url}/v1/dlq/replay", json={"ids": ids}) as r:
            assert r.status == 400, await r.text()
        # ingest still works: the writer thread did not die
        status, _ = await post(http, broker_url(system), ce_headers("after"))
        assert status == 202
        async with http.get(f"{system.admin_url}/readyz") as r:
            assert r.status == 200


async def test_a_request_the_broker_never_answers_gets_503_within_the_deadline(
    run_workers: Runner,
) -> None:
    async with run_workers(manifests(broker_doc()), answer_timeout=1.0) as system:
        broker = system.system.brokers["default/default"]
        released = asyncio.Event()

        async def stuck(events: Sequence[Event]) -> None:
            await released.wait()

        broker.publish = stuck  # type: ignore[method-assign]
        try:
            async with aiohttp.ClientSession() as http, asyncio.timeout(15):
                status, _ = await post(http, broker_url(system), ce_headers("stuck"))
                assert status == 503
        finally:
            released.set()


async def test_readiness_is_false_while_the_store_cannot_write(
    run: Runner, subscriber: RecordingSubscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sqlite_rows.apply_acks
    failing = True

    def disk_full(*args: Any) -> None:
        if failing:
            raise sqlite3.OperationalError("database or disk is full")
        real(*args)

    monkeypatch.setattr(sqlite_rows, "apply_acks", disk_full)
    text = manifests(broker_doc(), trigger_doc("all", f"{subscriber.url}/all"))
    async with run(text) as system, aiohttp.ClientSession() as http:

        async def ready() -> int:
            async with http.get(f"{system.admin_url}/readyz") as r:
                return r.status

        assert await ready() == 200
        status, _ = await post(http, broker_url(system), ce_headers("one"))
        assert status == 202
        await subscriber.wait_count(1, path="/all")
        broker = system.system.brokers["default/default"]
        await wait_until(lambda: not broker.status().ready, what="the failed ack commit")
        assert await ready() == 503
        failing = False
        trigger = system.system.triggers["default/all"]
        await wait_until(lambda: trigger.subscription.cached_backlog() == 0, what="the ack retry")
        assert await ready() == 200


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


GOOD = b'{"hello": "world"}'
ENCODED_BODIES = {
    # name: (Content-Encoding, body, expected status)
    "gzip": ("gzip", _gzip(GOOD), 202),
    "x-gzip": ("x-gzip", _gzip(GOOD), 202),
    "deflate": ("deflate", zlib.compress(GOOD), 202),
    "identity": ("identity", GOOD, 202),
    "corrupt-gzip": ("gzip", b"\x1f\x8b\x08\x00garbage-not-deflate", 400),
    "truncated-gzip": ("gzip", _gzip(GOOD)[:-12], 400),
    "two-members": ("gzip", _gzip(GOOD) + _gzip(GOOD), 400),
    "gzip-gzip": ("gzip, gzip", _gzip(_gzip(GOOD)), 415),
    "brotli": ("br", GOOD, 415),
    "bomb": ("gzip", _gzip(b"\0" * (4 * 1024 * 1024)), 413),
}


@pytest.mark.parametrize("case", list(ENCODED_BODIES))
async def test_content_encodings_are_decoded_strictly_and_bounded(
    run: Runner, subscriber: RecordingSubscriber, case: str
) -> None:
    coding, body, expected = ENCODED_BODIES[case]
    text = manifests(broker_doc(), trigger_doc("all", f"{subscriber.url}/all"))
    async with run(text) as system, aiohttp.ClientSession() as http:
        headers = {**ce_headers(f"enc-{case}"), "Content-Type": "application/json"}
        headers["Content-Encoding"] = coding
        status, answer = await post(http, broker_url(system), headers, body)
        assert status == expected, answer
        broker = system.system.brokers["default/default"]
        if expected == 202:
            [received] = await subscriber.wait_count(1, path="/all")
            assert received.data == GOOD
        else:
            assert broker.status().stored_events == 0


def _hook_request(system: Running, path: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    return _raw(path, system.ingress_url.removeprefix("http://"), headers, b"{}")


@pytest.mark.parametrize(
    ("path", "header", "first", "second"),
    [
        ("/hooks/default/bearer", b"Authorization", b"Bearer " + TOKEN.encode(), b"Bearer x"),
        ("/hooks/default/bearer", b"Authorization", b"Bearer x", b"Bearer " + TOKEN.encode()),
        ("/webhooks/default/project", b"X-Gitlab-Token", b"wrong", TOKEN.encode()),
        ("/webhooks/default/project", b"X-Gitlab-Event", b"Push Hook", b"Tag Push Hook"),
    ],
)
async def test_a_repeated_security_header_is_refused(
    run: Runner, path: str, header: bytes, first: bytes, second: bytes
) -> None:
    async with run(manifests(broker_doc()) + "---\n" + GITLAB) as system:
        headers = [(b"Content-Type", b"application/json"), (header, first), (header, second)]
        if header != b"X-Gitlab-Token" and "project" in path:
            headers.append((b"X-Gitlab-Token", TOKEN.encode()))
        response = await raw_exchange(system.ingress_url, _hook_request(system, path, headers))
        assert response is not None
        assert response.status == 400, response
        assert b"duplicate" in response.body


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/hooks/default/bearer", [(b"Authorization", b"Bearer wrong")]),
        ("/webhooks/default/project", [(b"X-Gitlab-Token", b"wrong")]),
        ("/webhooks/default/repo", [(b"X-GitHub-Event", b"push")]),  # no signature
    ],
    ids=["bearer", "gitlab", "github-unsigned"],
)
async def test_a_webhook_that_cannot_authenticate_is_refused_before_its_body_is_read(
    run: Runner, path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    async with run(manifests(broker_doc()) + "---\n" + GITLAB + "---\n" + GITHUB) as system:
        reader, writer = await open_raw(system.ingress_url)
        try:
            head = _raw(
                path,
                system.ingress_url.removeprefix("http://"),
                [(b"Content-Type", b"application/json"), *headers],
                b"",
            ).replace(b"Content-Length: 0", b"Content-Length: 20000000")
            writer.write(head)  # and not one byte of the 20 MB body
            await writer.drain()
            async with asyncio.timeout(10):
                response = await read_response(reader)
        finally:
            writer.close()
        assert response is not None
        assert response.status == 401, response


@pytest.fixture
def run_guarded(tmp_path: Path) -> Runner:
    """In-process ingress, the admin API requiring its token (as ``eventing run``)."""
    return _runner(tmp_path, 0, admin_token=True)


def _token(tmp_path: Path) -> str:
    return (tmp_path / "data" / "admin.token").read_text().strip()


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Content-Type": "text/plain"}, b'{"ids": [1]}', 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"ids=1", 415),
        ({"Origin": "https://evil.example"}, b'{"ids": [1]}', 403),
        ({"Origin": "null"}, b'{"ids": [1]}', 403),
        ({"Host": "evil.example:8090"}, b'{"ids": [1]}', 403),
        ({}, b'{"all": "no"}', 400),
        ({}, b'{"ids": [Infinity]}', 400),
        ({}, b'{"ids": [NaN]}', 400),
        ({}, b'{"ids": [1e400]}', 400),
        ({}, b'{"ids": [1], "trigger": 7}', 400),
        ({}, b"[1, 2]", 400),
        ({}, b'{"ids": [' + b"9" * 5000 + b"]}", 400),
        ({}, b'{"ids": []}', 200),
    ],
)
async def test_admin_writes_are_json_only_same_origin_and_bounded(
    run_guarded: Runner, tmp_path: Path, headers: dict[str, str], body: bytes, status: int
) -> None:
    async with run_guarded(manifests(broker_doc())) as system, aiohttp.ClientSession() as http:
        sent = {"Content-Type": "application/json", "Authorization": f"Bearer {_token(tmp_path)}"}
        sent.update(headers)
        async with http.post(f"{system.admin_url}/v1/dlq/replay", data=body, headers=sent) as r:
            assert r.status == status, await r.text()
            assert r.content_type == "application/json"


@pytest.mark.parametrize(
    "query", ["after=99999999999999999999999", "after=-1", "after=1e400", "limit=x", "limit=0"]
)
async def test_admin_reads_refuse_out_of_range_numbers(
    run_guarded: Runner, tmp_path: Path, query: str
) -> None:
    async with run_guarded(manifests(broker_doc())) as system, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {_token(tmp_path)}"}
        async with http.get(f"{system.admin_url}/v1/dlq?{query}", headers=auth) as r:
            assert r.status == 400, await r.text()
        async with http.get(
            f"{system.admin_url}/v1/dlq/99999999999999999999999", headers=auth
        ) as r:
            assert r.status == 404


async def test_the_admin_token_is_private_required_and_found_by_the_cli(
    run_guarded: Runner, tmp_path: Path
) -> None:
    async with run_guarded(manifests(broker_doc())) as system, aiohttp.ClientSession() as http:
        token_file = tmp_path / "data" / "admin.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        async with http.post(f"{system.admin_url}/v1/dlq/delete", json={"ids": [1]}) as r:
            assert r.status == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        async with http.get(f"{system.admin_url}/v1/dlq", headers=wrong) as r:
            assert r.status == 401
        async with http.get(f"{system.admin_url}/v1/status") as r:
            assert r.status == 200  # the operational view stays open on loopback
        async with http.get(f"{system.admin_url}/readyz") as r:
            assert r.status == 200
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "eventing.app.cli", "dlq", "delete", "1",
            "--admin", system.admin_url, "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert json.loads(out) == {"deleted": 0}, err.decode()  # 401 without the token


async def test_connections_that_never_finish_their_headers_are_closed(run: Runner) -> None:
    async with run(manifests(broker_doc()), idle_timeout=1.0) as system:
        streams = [await open_raw(system.ingress_url) for _ in range(20)]
        try:
            for _, writer in streams:
                writer.write(b"POST /default/default HTTP/1.1\r\nHost: x\r\nce-id: 1\r\n")
            async with asyncio.timeout(15):
                for reader, _ in streams:
                    assert await reader.read() == b""  # closed by the server
        finally:
            for _, writer in streams:
                writer.close()


async def test_connections_beyond_the_cap_get_503_and_the_others_keep_working(
    run: Runner,
) -> None:
    async with run(manifests(broker_doc()), max_connections=3, idle_timeout=60.0) as system:
        held = [await open_raw(system.ingress_url) for _ in range(3)]
        try:
            extra = await open_raw(system.ingress_url)
            async with asyncio.timeout(10):
                response = await read_response(extra[0])
            extra[1].close()
            assert response is not None
            assert response.status == 503
            assert response.headers["retry-after"] == "1"
            reader, writer = held[0]
            writer.write(
                _raw("/default/default", "x", [(k.encode(), v.encode()) for k, v in
                     ce_headers("held").items()], b"")
            )  # fmt: skip
            async with asyncio.timeout(10):
                answer = await read_response(reader)
            assert answer is not None
            assert answer.status == 202
        finally:
            for _, writer in held:
                writer.close()


async def test_a_worker_that_crashes_now_and_then_is_restarted_without_growing_gaps(
    run_workers: Runner,
) -> None:
    async with run_workers(manifests(broker_doc())) as system:
        workers = system.workers
        assert workers is not None
        workers.stable_after = 1.0
        loop = asyncio.get_running_loop()

        async def crash(after_stable: bool) -> None:
            proc = workers.procs[0]
            assert proc is not None
            if after_stable:
                began = loop.time()
                await wait_until(lambda: loop.time() - began > 1.5, what="a stable run")
            proc.kill()
            await wait_until(
                lambda: (
                    workers.procs[0] is not proc
                    and (channel := workers.channels[0]) is not None
                    and channel.ready.is_set()
                ),
                what="the restarted worker",
            )

        await crash(after_stable=False)
        await crash(after_stable=False)  # crashing in a row: the gap doubles
        await crash(after_stable=True)  # after a stable run: back to the base
        assert [delay for _, delay in workers.restarts] == [0.5, 1.0, 0.5]
        async with aiohttp.ClientSession() as http:
            status, _ = await post(http, broker_url(system), ce_headers("after-crashes"))
            assert status == 202


async def test_credentials_in_a_subscriber_url_are_used_but_never_shown(
    run: Runner, subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    subscriber.responder = lambda received, n: Answer(status=500)
    host = subscriber.url.removeprefix("http://")
    uri = f"http://alice:s3cret-pass@{host}/sub?token=s3cret-query&x=1"
    text = manifests(
        broker_doc(),
        trigger_doc("t", uri, delivery={"retry": 0, "deadLetterSink": {"uri": "dlq:"}}),
    )
    async with run(text) as system, aiohttp.ClientSession() as http:
        status, _ = await post(http, broker_url(system), ce_headers("secretive"))
        assert status == 202
        await subscriber.wait_count(1, path="/sub")
        received = subscriber.received[0]
        assert (
            received.headers["Authorization"]
            == "Basic " + base64.b64encode(b"alice:s3cret-pass").decode()
        )
        queue = system.system.brokers["default/default"].dead_letters
        assert queue is not None
        await wait_until(lambda: queue.depths().get("default/t") == 1, what="the dead letter")
        [dead] = await queue.list_dead_letters(None, 10)
        shown = json.dumps(dead.event.attributes)
        async with http.get(f"{system.admin_url}/v1/status") as r:
            shown += await r.text()
        assert "s3cret" not in shown
        assert "redacted@" in dead.event.attributes["knativeerrordest"]  # type: ignore[operator]
    data = tmp_path / "data"
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "events.db").stat().st_mode & 0o777 == 0o600


async def test_malformed_requests_are_one_warning_line_not_tracebacks(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    async with run(manifests(broker_doc())) as system:
        for _ in range(5):
            response = await raw_exchange(
                system.ingress_url,
                b"POST /default/default HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
            )
            assert response is not None
            assert response.status == 400
    if system.workers is None:  # a worker logs in its own process
        server = [r for r in caplog.records if r.name.startswith(("aiohttp", "eventing.conn"))]
        assert not any(r.exc_info for r in server), [r.getMessage() for r in server]
        assert len([r for r in server if r.levelname == "WARNING"]) == 1


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "workers"])
async def test_shutdown_answers_503_and_drains_without_starting_new_deliveries(
    workers: int, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    arrived: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        arrived.append(request.headers.get("ce-id", ""))
        await gate.wait()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    text = manifests(
        broker_doc(),
        trigger_doc("slow", f"http://127.0.0.1:{port}/slow", delivery={"retry": 0}),
    )
    directory = tmp_path / "drain"
    directory.mkdir()
    (directory / "system.yaml").write_text(text)
    settings = RuntimeSettings(
        port=0,
        admin_port=0,
        drain_timeout=30.0,
        ingress_workers=workers,
        store=StoreSettings(data_dir=tmp_path / "drain-data"),
    )
    try:
        system = await start(directory, settings)
        async with aiohttp.ClientSession() as http:
            for i in range(30):
                status, _ = await post(http, broker_url(system), ce_headers(f"e{i}"))
                assert status == 202
            await wait_until(lambda: len(arrived) > 0, what="deliveries on the wire")
            dispatcher = system.system.triggers["default/slow"].dispatcher
            stopping = asyncio.create_task(stop(system, settings))
            await wait_until(lambda: not system.ingress.accepting, what="the stop to begin")
            # Started before the stop (none can finish: the gate is shut). An attempt
            # already sent may reach the handler a moment later, so count the
            # dispatcher's attempts, not the arrivals.
            on_the_wire = dispatcher.stats.in_flight
            await wait_until(lambda: len(arrived) == on_the_wire, what="those attempts to arrive")
            status, _ = await post(http, broker_url(system), ce_headers("late"))
            assert status == 503  # not a refused connection
            gate.set()
            async with asyncio.timeout(20):  # well before the 30 s drain deadline
                await stopping
        assert len(arrived) == on_the_wire  # nothing new was started after the stop
    finally:
        gate.set()
        await runner.cleanup()


async def test_the_admin_api_answers_only_the_hosts_it_is_told(tmp_path: Path) -> None:
    run = _runner(tmp_path, 0, allowed=("Eventing.Example",))
    async with run(manifests(broker_doc())) as system, aiohttp.ClientSession() as http:
        for host, status in [
            ("eventing.example:8090", 200),
            ("localhost", 200),
            ("127.0.0.1:1", 200),
            ("[::1]:8090", 200),
            ("attacker.example", 403),
            ("", 403),
        ]:
            async with http.get(f"{system.admin_url}/v1/status", headers={"Host": host}) as r:
                assert r.status == status, host
