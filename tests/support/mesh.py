"""Building blocks for system tests: manifests as dicts, a system runner with custom
ingress settings, posting events, and waiting on conditions (never on the clock).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import yaml
from aiohttp import web

from eventing.ingress.server import IngressSettings

if TYPE_CHECKING:
    from eventing.app.runtime import Running
    from eventing.broker.store import Store

NAMESPACE = "default"
BROKER = "default"

Doc = dict[str, Any]


def broker_doc(name: str = BROKER, delivery: Mapping[str, Any] | None = None) -> Doc:
    doc: Doc = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": name},
    }
    if delivery is not None:
        doc["spec"] = {"delivery": dict(delivery)}
    return doc


def trigger_doc(
    name: str,
    uri: str,
    *,
    broker: str = BROKER,
    attributes: Mapping[str, str] | None = None,
    filters: list[Any] | None = None,
    delivery: Mapping[str, Any] | None = None,
) -> Doc:
    spec: Doc = {"broker": broker, "subscriber": {"uri": uri}}
    if attributes is not None:
        spec["filter"] = {"attributes": dict(attributes)}
    if filters is not None:
        spec["filters"] = filters
    if delivery is not None:
        spec["delivery"] = dict(delivery)
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": spec,
    }


def manifests(*docs: Doc) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def broker_url(running: Running, broker: str = BROKER) -> str:
    return f"{running.ingress_url}/{NAMESPACE}/{broker}"


def trigger_key(name: str) -> str:
    return f"{NAMESPACE}/{name}"


def _write_manifests(directory: Path, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "system.yaml").write_text(text)


@asynccontextmanager
async def run_system(
    directory: Path,
    text: str,
    *,
    ingress: IngressSettings | None = None,
    data_dir: Path | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """Start the whole system (like the ``system`` fixture) from ``text`` written into
    ``directory``, on free ports, with custom ingress settings; ``overrides`` are other
    ``RuntimeSettings`` fields (``ingress_workers``, ``drain_timeout``, ``host``, ...).
    Started again with the same ``directory`` (or ``data_dir``) it finds its data."""
    from eventing.app.runtime import RuntimeSettings, start, stop
    from eventing.app.system import StoreSettings

    _write_manifests(directory, text)
    fields: dict[str, Any] = {
        "port": 0,
        "admin_port": 0,
        "drain_timeout": 5.0,
        "store": StoreSettings(data_dir=data_dir or directory / "data"),
        "ingress": ingress or IngressSettings(),
        **overrides,
    }
    settings = RuntimeSettings(**fields)
    running = await start(directory, settings)
    try:
        yield running
    finally:
        await stop(running, settings)


def ce_headers(
    id_: str = "e1",
    type_: str = "com.example.test",
    *,
    source: str = "/test",
    specversion: str = "1.0",
    **extra: str,
) -> dict[str, str]:
    """Binary-mode headers for an event; ``extra`` keys become ``ce-<key>``."""
    headers = {"ce-specversion": specversion, "ce-id": id_, "ce-source": source, "ce-type": type_}
    headers.update({f"ce-{k}": v for k, v in extra.items()})
    return headers


async def post(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    body: bytes | io.BytesIO = b"",
) -> tuple[int, bytes]:
    """POST exactly these headers (no Content-Type unless given); status and body."""
    skip = () if any(k.lower() == "content-type" for k in headers) else ("Content-Type",)
    async with session.post(
        url, data=body, headers=dict(headers), skip_auto_headers=skip
    ) as response:
        return response.status, await response.read()


async def post_batch(running: Running, body: bytes | str) -> None:
    """POST one batched-mode body to the default broker; it must be accepted (202)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            broker_url(running),
            data=body,
            headers={"Content-Type": "application/cloudevents-batch+json"},
        ) as response,
    ):
        assert response.status == 202, await response.text()


async def serve(route: str, handler: Callable[[web.Request], Any]) -> tuple[web.AppRunner, str]:
    """A subscriber app on a free loopback port answering POST ``route``; its runner
    (clean it up) and ``http://127.0.0.1:PORT``."""
    app = web.Application()
    app.router.add_post(route, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def send(
    session: aiohttp.ClientSession,
    running: Running,
    id_: str,
    type_: str = "com.example.test",
    body: bytes = b"",
    **extra: str,
) -> None:
    """Post one binary event and require 202."""
    headers = ce_headers(id_, type_, **extra)
    if body:
        headers["Content-Type"] = "text/plain"
    status, answer = await post(session, broker_url(running), headers, body)
    assert status == 202, (status, answer)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds.

    For state the system exposes no event for (backlogs, counters); a condition with
    a deadline, never a fixed sleep standing in for synchronisation.
    """
    try:
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - polling live state
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def idle(running: Running) -> bool:
    """Every trigger has nothing pending and nothing in flight."""
    return all(
        t.subscription.cached_backlog() == 0 and t.dispatcher.stats.in_flight == 0
        for t in running.system.triggers.values()
    )


async def settled(running: Running, timeout: float = 30.0) -> None:
    """Every trigger's backlog, read fresh (a Kafka group's lag, a queue's depth), is
    0 and nothing is in flight."""

    async def drained() -> bool:
        for t in running.system.triggers.values():
            if t.dispatcher.stats.in_flight or await t.subscription.backlog():
                return False
        return True

    try:
        async with asyncio.timeout(timeout):
            while not await drained():  # noqa: ASYNC110 - polling state with I/O
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError("timed out waiting for every trigger's backlog to drain") from None


def assert_nothing_stored(running: Running) -> None:
    """No broker ever stored an event: no rows and no commit at all."""
    for broker in running.system.brokers.values():
        store = embedded_store(running, broker.key)
        if store is None:
            continue  # a server-backed class: the backlog and deliveries below say it
        stats = store.stats()
        assert stats.events == 0, f"{broker.key} holds {stats.events} events"
        assert stats.commits == 0, f"{broker.key} committed {stats.commits} times"
    for trig in running.system.triggers.values():
        assert trig.subscription.cached_backlog() == 0
        assert trig.dispatcher.stats.delivered == 0


def embedded_store(running: Running, broker: str = f"{NAMESPACE}/{BROKER}") -> Store | None:
    """The store of an embedded-class broker (for tests of the embedded class itself),
    or None for a class whose storage is a server."""
    from eventing.broker.embedded import EmbeddedBroker

    found = running.system.brokers[broker]
    return found.store if isinstance(found, EmbeddedBroker) else None


def stored_events(running: Running, broker: str = f"{NAMESPACE}/{BROKER}") -> int:
    """Events the broker holds, as its status says (embedded classes only)."""
    events = running.system.brokers[broker].status().stored_events
    assert events is not None, f"{broker} does not count stored events"
    return events


async def admin_json(
    session: aiohttp.ClientSession, running: Running, path: str, payload: Any = None
) -> tuple[int, Any]:
    url = f"{running.admin_url}{path}"
    if payload is None:
        async with session.get(url) as response:
            return response.status, await response.json()
    async with session.post(url, json=payload) as response:
        return response.status, await response.json()


async def metrics_text(session: aiohttp.ClientSession, running: Running) -> str:
    async with session.get(f"{running.admin_url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def metric_value(text: str, name: str, labels: Mapping[str, str]) -> float | None:
    """The sum of the Prometheus samples of ``name`` whose labels include ``labels``,
    or None when there is none."""
    total: float | None = None
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        raw_labels, _, value = line[len(name) + 1 :].rpartition("} ")
        found = dict(_label_pairs(raw_labels))
        if all(found.get(k) == v for k, v in labels.items()):
            total = (total or 0.0) + float(value)
    return total


def _label_pairs(raw: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in raw.split('",'):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((key.strip(), value.strip().strip('"')))
    return pairs
