"""Who may use the admin API: Host and Origin checks, JSON-only writes, and a token.

Why each:

* **Host**: a web page can make a browser on this machine send requests to
  127.0.0.1 under a name it controls (DNS rebinding); such requests carry that name in
  ``Host``. Only loopback names, the address the API binds to and this machine's name
  are answered (403 otherwise).
* **Origin**: a browser adds ``Origin`` to cross-site requests; a page from anywhere
  else is refused (403), so it can neither replay nor delete dead letters.
* **JSON only**: a write must be ``Content-Type: application/json``, which a page on
  another origin cannot send without a CORS preflight that is never granted (415).
* **Token**: when configured (``eventing run`` always does), writes, the dead-letter
  store (event data) and the live tail need ``Authorization: Bearer <token>``, or the
  cookie the dashboard gets by opening ``/ui?token=<token>`` once. The token is
  generated into ``<data dir>/admin.token`` (mode 0600); ``GET /v1/auth`` says where,
  so the CLI, run by the same user, reads it from there: the file's permissions are
  the credential. Probes (``/healthz``, ``/readyz``), ``/metrics``, ``/v1/status`` and
  the dashboard's own views stay open on the (loopback by default) address.
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

TOKEN_FILE: Final = "admin.token"  # noqa: S105 - a file name, not a secret
COOKIE: Final = "eventing_admin"
LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PROTECTED_PREFIXES: Final = ("/v1/dlq", "/v1/tail")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_or_create_token(data_dir: Path) -> tuple[str, Path]:
    """The admin token of ``data_dir`` (created once, 0600), and its file's path."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = (data_dir / TOKEN_FILE).resolve()
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if len(token) < 32:
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path


@dataclass
class AdminAccess:
    """The admin API's access rules (see the module docstring)."""

    bind_host: str = "127.0.0.1"
    token: str | None = None
    token_file: Path | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    def hosts(self) -> frozenset[str]:
        names = set(LOOPBACK) | set(self.allowed_hosts)
        if self.bind_host not in ("", "0.0.0.0", "::"):  # noqa: S104 - a comparison
            names.add(self.bind_host.lower())
        else:
            names.add(socket.gethostname().lower())
        return frozenset(names)


def _host_name(value: str) -> str:
    """``Host``/authority without the port, lower-cased ('' when malformed)."""
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname or "").lower()
    except ValueError:
        return ""


def access_middleware(access: AdminAccess) -> Middleware:
    allowed = access.hosts()
    token = access.token.encode() if access.token else None

    def deny(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    def authenticated(request: web.Request) -> bool:
        assert token is not None
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and given:
            return _same(token, given.strip())
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and _same(token, cookie)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _host_name(request.headers.get("Host", "")) not in allowed:
            return deny(403, "this Host is not served (allowed: loopback and the bind address)")
        origin = request.headers.get("Origin")
        if origin is not None and _host_name(urlsplit(origin).netloc) not in allowed:
            return deny(403, "cross-origin requests are not served")
        if request.method in _WRITES:
            media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return deny(415, "send Content-Type: application/json")
        if token is not None:
            if request.path == "/ui" and "token" in request.query:
                if not _same(token, request.query["token"]):
                    return deny(401, "wrong admin token")
                response = web.Response(status=303, headers={"Location": "/ui"})
                response.set_cookie(COOKIE, access.token or "", httponly=True, samesite="Strict")
                return response
            protected = request.method in _WRITES or request.path.startswith(_PROTECTED_PREFIXES)
            if protected and not authenticated(request):
                return web.json_response(
                    {"error": "admin token required (Authorization: Bearer <token>)"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="eventing admin"'},
                )
        return await handler(request)

    return middleware


def _same(token: bytes, given: str) -> bool:
    try:
        return hmac.compare_digest(token, given.encode("utf-8"))
    except UnicodeError:
        return False


def token_location(access: AdminAccess) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /v1/auth``: whether a token is needed and which file holds it."""

    async def where(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "token": access.token is not None,
                "tokenFile": str(access.token_file) if access.token_file else None,
            }
        )

    return where
