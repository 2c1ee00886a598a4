"""A workload replica for tests: handles one event in WORK_SECONDS, then reports
``{"id", "pid"}`` to REPORT_URL, then answers 202. With START_URL it also reports
``{"id", "pid"}`` there when it starts an event (so a test can tell a job that ran
twice from one that finished once). Serves GET /healthz.

Run by the runtime as ``python tests/support/replica_app.py`` with PORT set."""

from __future__ import annotations

import asyncio
import json
import os

import aiohttp
from aiohttp import web

WORK = float(os.environ.get("WORK_SECONDS", "0"))
REPORT = os.environ.get("REPORT_URL", "")
START = os.environ.get("START_URL", "")
PID_FILE = os.environ.get("PID_DIR", "")


async def handle(request: web.Request) -> web.Response:
    await request.read()
    if START:
        session0: aiohttp.ClientSession = request.app["http"]
        body0 = json.dumps({"id": request.headers.get("ce-id"), "pid": os.getpid()})
        async with session0.post(START, data=body0) as r0:
            await r0.read()
    if WORK:
        await asyncio.sleep(WORK)
    if REPORT:
        session: aiohttp.ClientSession = request.app["http"]
        body = json.dumps({"id": request.headers.get("ce-id"), "pid": os.getpid()})
        async with session.post(REPORT, data=body) as r:
            await r.read()
    return web.Response(status=202)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    app["http"] = aiohttp.ClientSession()
    yield
    await app["http"].close()


def main() -> None:
    if PID_FILE:
        with open(os.path.join(PID_FILE, str(os.getpid())), "w") as f:
            f.write(str(os.getpid()))
    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/", handle)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None, access_log=None)


if __name__ == "__main__":
    main()
