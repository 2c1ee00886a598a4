"""A tiny subscriber for the quickstart: prints each CloudEvent it receives.

Run alone with ``python subscriber.py [PORT]`` (default 8181)."""

from __future__ import annotations

import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    print(
        f"  {request.path:<13} <- type={request.headers.get('ce-type')} "
        f"id={request.headers.get('ce-id')} data={body.decode('utf-8', 'replace')}",
        flush=True,
    )
    return web.Response(status=202)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8181
    app = web.Application()
    app.router.add_post("/{path:.*}", receive)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
