"""A replica of one version of the canary example's shop service.

eventing starts it with PORT and VERSION set; it answers GET /healthz (the readiness
probe) and prints each order event it takes with its version, so the split is
visible in eventing's output. Run it by hand with
``PORT=8181 VERSION=1.2 python examples/canary/shop.py``."""

from __future__ import annotations

import os

from aiohttp import web

VERSION = os.environ.get("VERSION", "?")


async def order(request: web.Request) -> web.Response:
    body = await request.read()
    key = request.headers.get("ce-partitionkey", "-")
    print(f"shop {VERSION}: order {body[:80]!r} (customer {key})", flush=True)
    return web.Response(status=202)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/", order)
    port = int(os.environ["PORT"])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
