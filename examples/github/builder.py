"""A toy "builder" subscriber for the git-push walkthrough.

    python examples/github/builder.py [PORT] [-- COMMAND ...]

For each push event it prints what it would build and, when a command is given, runs
it with ``GIT_REPOSITORY``, ``GIT_REF`` and ``GIT_SHA`` in its environment. It answers
202 when the command succeeded and 500 when it failed, so the broker retries a failed
build (and dead-letters it once the retries are spent).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from aiohttp import web


def make_app(command: list[str]) -> web.Application:
    async def build(request: web.Request) -> web.Response:
        push = json.loads(await request.read())
        repo = f"{request.headers.get('ce-owner')}/{request.headers.get('ce-repository')}"
        sha, ref = push.get("after", "?"), request.headers.get("ce-ref", "?")
        print(f"build {repo} {ref} at {sha} (event {request.headers.get('ce-id')})", flush=True)
        if not command:
            return web.Response(status=202)
        env = {**os.environ, "GIT_REPOSITORY": repo, "GIT_REF": ref, "GIT_SHA": sha}
        process = await asyncio.create_subprocess_exec(*command, env=env)
        status = await process.wait()
        print(f"  -> exit {status}", flush=True)
        return web.Response(status=202 if status == 0 else 500)

    app = web.Application()
    app.router.add_post("/build", build)
    return app


def main() -> None:
    args = sys.argv[1:]
    command = args[args.index("--") + 1 :] if "--" in args else []
    port = int(args[0]) if args and args[0] != "--" else 8181
    web.run_app(make_app(command), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
