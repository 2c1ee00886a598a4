"""TLS for the ingress and the admin API (server side) and for ``https://`` delivery
(client side).

Why these choices: a server context with the ``ssl`` module's secure defaults (TLS
1.2 or later, no compression, the default cipher list), and a certificate that can be
renewed without a restart: :func:`watch` looks at the certificate and key files'
modification times and loads them into the same context, so new handshakes use the
new pair while connections already open keep theirs. A pair that fails to load
(half-written during a renewal) is logged and tried again; the old one stays.

For delivery, a client context trusts the system's CAs, or only the given bundle,
and presents a client certificate when one is configured (mutual TLS).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerTls:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClientTls:
    ca_bundle: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def server_context(tls: ServerTls) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    return context


def client_context(tls: ClientTls) -> ssl.SSLContext:
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_bundle) if tls.ca_bundle else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert is not None:
        context.load_cert_chain(tls.cert, tls.key)
    return context


def _mtimes(tls: ServerTls) -> tuple[float, float]:
    try:
        return os.stat(tls.cert).st_mtime, os.stat(tls.key).st_mtime
    except OSError:
        return (0.0, 0.0)


async def watch(context: ssl.SSLContext, tls: ServerTls, every: float = 2.0) -> None:
    """Reload the pair into ``context`` whenever either file changes (until cancelled)."""
    seen = _mtimes(tls)
    while True:
        await asyncio.sleep(every)
        now = _mtimes(tls)
        if now == seen:
            continue
        try:
            context.load_cert_chain(tls.cert, tls.key)
        except (OSError, ssl.SSLError) as exc:
            logger.warning("TLS certificate %s not reloaded (kept the old one): %s", tls.cert, exc)
            continue
        seen = now
        logger.info("TLS certificate %s reloaded", tls.cert)
