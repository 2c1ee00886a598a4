"""A replica of the autoscaling example: handles one event at a time, taking
WORK_SECONDS (default 0.2) per event, on the PORT the runtime gives it.

Serves GET /healthz for the readiness probe and POST / for events."""

from __future__ import annotations

import asyncio
import os
import signal

from aiohttp import web

WORK = float(os.environ.get("WORK_SECONDS", "0.2"))


async def handle(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(WORK)  # stands in for real work
    print(f"handled {request.headers.get('ce-id')}", flush=True)
    return web.Response(status=202)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/", handle)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        print=None,
        access_log=None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
