"""A replica of the quickstart's order-processor workload.

eventing starts it with PORT set; it answers GET /healthz (the readiness probe) and
takes WORK_SECONDS (default 0.25) per order event POSTed to /. Run it by hand with
``PORT=8181 python examples/quickstart/order_processor.py``."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

WORK = float(os.environ.get("WORK_SECONDS", "0.25"))


async def order(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(WORK)  # stands in for the real work on the order
    return web.Response(status=202)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/", order)
    port = int(os.environ["PORT"])
    print(f"order-processor listening on 127.0.0.1:{port} (pid {os.getpid()})", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
