"""TLS (issue 11): https on the ingress and the admin API, in both ingress modes, with
the certificate reloaded when its files change; https delivery to a subscriber that
requires a client certificate, trusting only the configured CA bundle."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eventing.app.runtime import RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.tls import ClientTls, ServerTls
from tests.support.mesh import broker_doc, ce_headers, manifests, post, trigger_doc, wait_until


def _pair(
    directory: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert, key


async def _served_serial(url: str) -> int:
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "workers"])
async def test_https_ingress_and_admin_with_a_certificate_reloaded_on_change(
    workers: int, tmp_path: Path
) -> None:
    ca = _pair(tmp_path, "ca")
    cert, key, first, _ = _pair(tmp_path, "server", (ca[2], ca[3]))
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "system.yaml").write_text(manifests(broker_doc()))
    settings = RuntimeSettings(
        port=0,
        admin_port=0,
        ingress_workers=workers,
        tls=ServerTls(cert, key),
        store=StoreSettings(data_dir=tmp_path / "data"),
    )
    system = await start(directory, settings)
    try:
        assert system.ingress_url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(ca[0]))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as http:
            status, _ = await post(http, f"{system.ingress_url}/default/default", ce_headers("t1"))
            assert status == 202
            async with http.get(f"{system.admin_url}/healthz") as r:
                assert r.status == 200
        assert await _served_serial(system.ingress_url) == first.serial_number
        renewed = _pair(tmp_path, "renewed", (ca[2], ca[3]))
        cert.write_bytes(renewed[0].read_bytes())
        key.write_bytes(renewed[1].read_bytes())
        serials: list[int] = []

        async def probe() -> None:
            serials.append(await _served_serial(system.ingress_url))
            serials.append(await _served_serial(system.admin_url))

        async with asyncio.timeout(20):
            while serials[-2:] != [renewed[2].serial_number] * 2:
                serials.clear()
                await probe()
                await asyncio.sleep(0.2)
    finally:
        await stop(system, settings)


async def test_https_delivery_with_a_ca_bundle_and_a_client_certificate(tmp_path: Path) -> None:
    ca = _pair(tmp_path, "ca")
    server_cert, server_key, _, _ = _pair(tmp_path, "subscriber", (ca[2], ca[3]))
    client_cert, client_key, _, _ = _pair(tmp_path, "eventing", (ca[2], ca[3]))
    received: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        assert peer is not None  # the client presented its certificate
        received.append(request.headers["ce-id"])
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/sub", handle)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca[0]))
    server_context.load_cert_chain(server_cert, server_key)
    server_context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "system.yaml").write_text(
        manifests(broker_doc(), trigger_doc("tls", f"https://127.0.0.1:{port}/sub"))
    )
    settings = RuntimeSettings(
        port=0,
        admin_port=0,
        store=StoreSettings(
            data_dir=tmp_path / "data",
            delivery_tls=ClientTls(ca[0], client_cert, client_key),
        ),
    )
    system = await start(directory, settings)
    try:
        async with aiohttp.ClientSession() as http:
            status, _ = await post(http, f"{system.ingress_url}/default/default", ce_headers("s1"))
            assert status == 202
        await wait_until(lambda: received == ["s1"], what="the https delivery")
    finally:
        await stop(system, settings)
        await runner.cleanup()
