"""The admin HTTP API (localhost by default): health, readiness, Prometheus metrics,
status, and the dead-letter store.

Read endpoints return JSON for the CLI's ``--json`` and for scripts. The admin API
changes state in two places only, ``POST /v1/dlq/replay`` and ``/v1/dlq/delete``; it
binds to 127.0.0.1
unless configured otherwise because it is unauthenticated.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eventing.admin_auth import AdminAccess, access_middleware, token_location
from eventing.broker.base import DeadLetterQueue
from eventing.broker.store import DeadLetter
from eventing.errors import EventingError
from eventing.events import Event
from eventing.metrics import Metrics

MAX_LIST = 1000
MAX_ID = 2**63 - 1  # SQLite's INTEGER range: a larger id cannot name a dead letter


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; ValueError for anything else (``NaN``,
    ``Infinity`` and numbers that overflow to them included)."""
    raw = await request.read()
    value = json.loads(raw, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("send a JSON object")
    return value


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _ids(body: Any) -> list[int]:
    """The ``ids`` of a request body: a list of at most MAX_LIST integers in range."""
    raw = body.get("ids", [])
    if not isinstance(raw, list) or len(raw) > MAX_LIST:
        raise ValueError(f"ids must be a list of at most {MAX_LIST} integers")
    ids: list[int] = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_ID:
            raise ValueError(f"ids must be integers from 1 to {MAX_ID}")
        ids.append(item)
    return ids


@dataclass
class AdminHooks:
    """What the admin API reads and does; provided by the composition root."""

    metrics: Metrics
    status: Callable[[], dict[str, Any]]
    ready: Callable[[], bool]
    dead_letters: Callable[[], list[DeadLetterQueue]]
    """Every broker's ``dlq:`` store, each once."""
    replay: Callable[[str, Event], Awaitable[None]]
    routes: list[Callable[[web.Application], None]] = field(default_factory=list)
    """More routes for the same application (the dashboard, tail, explain)."""


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload, indent=1).encode(), content_type="application/json"
    )


def dead_letter_json(dl: DeadLetter, with_data: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": dl.id,
        "broker": dl.broker,
        "trigger": dl.trigger,
        "failedAt": dl.failed_at,
        "attempts": dl.attempts,
        "reason": dl.reason,
        "status": dl.status,
        "attributes": dl.event.attributes,
        "dataBytes": len(dl.event.data or b""),
    }
    if with_data and dl.event.data is not None:
        try:
            out["data"] = dl.event.data.decode("utf-8")
        except UnicodeDecodeError:
            out["dataBase64"] = base64.b64encode(dl.event.data).decode()
    return out


class _Api:
    """The admin endpoints, as methods over the self.hooks."""

    def __init__(self, hooks: AdminHooks) -> None:
        self.hooks = hooks

    async def healthz(self, _: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        ok = self.hooks.ready()
        return _json({"ready": ok}, 200 if ok else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.hooks.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(self, _: web.Request) -> web.Response:
        return _json(self.hooks.status())

    async def dlq_list(self, request: web.Request) -> web.Response:
        trigger = request.query.get("trigger") or None
        try:
            limit = min(MAX_LIST, _query_int(request, "limit", 100, 1, MAX_ID))
            after = _query_int(request, "after", 0, 0, MAX_ID)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        items: list[dict[str, Any]] = []
        for store in self.hooks.dead_letters():
            for dl in await store.list_dead_letters(trigger, limit, after):
                items.append(dead_letter_json(dl))
        items.sort(key=lambda d: (d["failedAt"], d["id"]))
        return _json({"items": items[:limit]})

    async def dlq_show(self, request: web.Request) -> web.Response:
        dl = await _find(self.hooks, request.match_info["id"])
        if dl is None:
            return _json({"error": "no such dead letter"}, 404)
        return _json(dead_letter_json(dl[1], with_data=True))

    async def dlq_replay(self, request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            ids = _ids(body)
            trigger = body.get("trigger")
            replay_all = body.get("all", False)
            if not isinstance(replay_all, bool):
                raise ValueError("all must be true or false")
            if trigger is not None and not isinstance(trigger, str):
                raise ValueError("trigger must be a string")
        except (ValueError, TypeError, AttributeError):
            return _json({"error": 'send {"ids": [1, 2]} or {"all": true, "trigger": ...}'}, 400)
        replayed: list[int] = []
        failed: list[dict[str, Any]] = []
        for store in self.hooks.dead_letters():
            targets = (
                [dl for dl in await store.list_dead_letters(trigger, MAX_LIST)]
                if replay_all
                else []
            )
            for dl_id in ids:
                found = await store.get_dead_letter(dl_id)
                if found is not None:
                    targets.append(found)
            for dl in targets:
                try:
                    await self.hooks.replay(dl.trigger, dl.event)
                except EventingError as exc:  # e.g. its trigger was removed since
                    failed.append({"id": dl.id, "error": str(exc)})
                    continue
                await store.delete_dead_letters([dl.id])
                replayed.append(dl.id)
        done = set(replayed) | {f["id"] for f in failed}
        missing = [i for i in ids if i not in done]
        ok = not missing and not failed
        return _json(
            {"replayed": replayed, "missing": missing, "failed": failed}, 200 if ok else 207
        )

    async def dlq_delete(self, request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            ids = _ids(body)
        except (ValueError, TypeError, AttributeError):
            return _json({"error": 'send {"ids": [1, 2]}'}, 400)
        deleted = 0
        for store in self.hooks.dead_letters():
            deleted += await store.delete_dead_letters(ids)
        return _json({"deleted": deleted})


def admin_app(hooks: AdminHooks, access: AdminAccess | None = None) -> web.Application:
    """The admin API; ``access`` says who may use it (:mod:`eventing.admin_auth`)."""
    api = _Api(hooks)
    access = access or AdminAccess()
    app = web.Application(middlewares=[access_middleware(access)])
    app.router.add_get("/v1/auth", token_location(access))
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/v1/status", api.status)
    app.router.add_get("/v1/dlq", api.dlq_list)
    app.router.add_get("/v1/dlq/{id}", api.dlq_show)
    app.router.add_post("/v1/dlq/replay", api.dlq_replay)
    app.router.add_post("/v1/dlq/delete", api.dlq_delete)
    for add in hooks.routes:
        add(app)
    return app


async def _find(hooks: AdminHooks, raw: str) -> tuple[DeadLetterQueue, DeadLetter] | None:
    if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        return None
    dl_id = int(raw)
    for store in hooks.dead_letters():
        dl = await store.get_dead_letter(dl_id)
        if dl is not None:
            return store, dl
    return None
