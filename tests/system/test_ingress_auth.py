"""Ingress authentication per broker and per webhook source (issue 11): bearer tokens
from secrets and JWTs from a JWKS file; 401 without a valid credential, 403 for one
that is not for this broker; nothing stored unless 2xx; a loud warning when the
ingress listens beyond loopback with an open door."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from eventing.app.runtime import Running
from tests.support.mesh import broker_doc, ce_headers, manifests, post, run_system, trigger_doc

ISSUER = "https://issuer.example"


def _broker(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    doc = broker_doc(name)
    doc["metadata"]["annotations"] = annotations
    return doc


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Any, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return key, path


def _jwt(key: Any, **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": "orders", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


Runner = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture(params=[0, 1], ids=["in-process", "workers"])
def run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    monkeypatch.setenv("EVENTING_SECRET_INGRESS_ORDERS", "orders-token-1\norders-token-2\n")
    monkeypatch.setenv("EVENTING_SECRET_INGRESS_AUDIT", "audit-token")

    def running(text: str, host: str = "127.0.0.1") -> AbstractAsyncContextManager[Running]:
        return run_system(
            tmp_path / "manifests",
            text,
            data_dir=tmp_path / "data",
            host=host,
            drain_timeout=2.0,
            ingress_workers=request.param,
        )

    return running


def _setup(url: str, jwks: Path) -> str:
    return manifests(
        _broker(
            "orders",
            {
                "eventing.local/auth-bearer-secret": "ingress/orders",
                "eventing.local/auth-jwt-issuer": ISSUER,
                "eventing.local/auth-jwt-audience": "orders, orders-v2",
                "eventing.local/auth-jwt-jwks-file": str(jwks),
            },
        ),
        _broker("audit", {"eventing.local/auth-bearer-secret": "ingress/audit"}),
        trigger_doc("o", f"{url}/o", broker="orders"),
        trigger_doc("a", f"{url}/a", broker="audit"),
    )


async def test_bearer_tokens_and_jwts_per_broker(
    run: Runner, subscriber: Any, keys: tuple[Any, Path]
) -> None:
    key, jwks = keys
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases: list[tuple[str | None, int]] = [
        (None, 401),
        ("Basic b3JkZXJzOng=", 401),
        ("Bearer wrong", 401),
        ("Bearer audit-token", 403),  # a valid token of another broker
        ("Bearer orders-token-2", 202),
        (f"Bearer {_jwt(key)}", 202),
        (f"Bearer {_jwt(key, aud='orders-v2')}", 202),
        (f"Bearer {_jwt(key, aud='billing')}", 403),
        (f"Bearer {_jwt(key, exp=int(time.time()) - 3600)}", 401),
        (f"Bearer {_jwt(key, iss='https://elsewhere')}", 401),
        (f"Bearer {_jwt(other)}", 401),
        ("Bearer " + jwt.encode({"iss": ISSUER, "aud": "orders"}, "", algorithm="none"), 401),
        (
            "Bearer "
            + jwt.encode({"iss": ISSUER, "aud": "orders", "exp": 2**40}, "k" * 32, "HS256"),
            401,
        ),
    ]
    async with run(_setup(subscriber.url, jwks)) as system, aiohttp.ClientSession() as http:
        url = f"{system.ingress_url}/default/orders"
        accepted = 0
        for index, (authorization, expected) in enumerate(cases):
            headers = ce_headers(f"e{index}")
            if authorization is not None:
                headers["Authorization"] = authorization
            status, body = await post(http, url, headers)
            assert status == expected, (authorization, body)
            accepted += status == 202
        status, _ = await post(
            http,
            f"{system.ingress_url}/default/audit",
            {**ce_headers("a1"), "Authorization": "Bearer audit-token"},
        )
        assert status == 202
        events = await subscriber.wait_count(accepted, path="/o")
        assert sorted(e.id for e in events) == ["e4", "e5", "e6"]  # nothing else stored


async def test_a_401_carries_a_challenge(
    run: Runner, subscriber: Any, keys: tuple[Any, Path]
) -> None:
    async with (
        run(_setup(subscriber.url, keys[1])) as system,
        aiohttp.ClientSession() as http,
        http.post(f"{system.ingress_url}/default/audit", headers=ce_headers("x")) as response,
    ):
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_webhook_source_can_require_a_bearer_token(run: Runner, subscriber: Any) -> None:
    hook = """---
apiVersion: eventing.local/v1alpha1
kind: WebhookSource
metadata:
  name: hook
  annotations: {eventing.local/auth-bearer-secret: ingress/audit}
spec:
  path: /hooks/default/open
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""
    text = manifests(broker_doc(), trigger_doc("all", f"{subscriber.url}/all")) + hook
    async with run(text) as system, aiohttp.ClientSession() as http:
        url = f"{system.ingress_url}/hooks/default/open"
        async with http.post(url, json={"a": 1}) as response:
            assert response.status == 401
        async with http.post(
            url, json={"a": 1}, headers={"Authorization": "Bearer audit-token"}
        ) as response:
            assert response.status == 202
        await subscriber.wait_count(1, path="/all")


async def test_a_non_loopback_ingress_without_auth_is_a_loud_warning(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventing.app.runtime")
    async with run(manifests(broker_doc()), host="0.0.0.0"):
        pass
    [record] = [r for r in caplog.records if "WITHOUT AUTHENTICATION" in r.getMessage()]
    assert "default/default" in record.getMessage()
