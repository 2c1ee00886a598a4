"""Who may send to a broker (or a webhook path): bearer tokens and JWTs, checked from
the headers before the body is read.

Why here and in this shape: Knative's broker ingress has no authentication of its own
(its OIDC feature verifies a sender's token for an audience); here each broker, and
each webhook source, may require one of:

* **bearer tokens** from secrets, kept only as SHA-256 digests, so the rules can go to
  the ingress worker processes without the tokens themselves, and compared in
  constant time;
* **JWTs** (RS256/ES256/PS256/EdDSA, never ``none`` or HMAC) signed by a key of a JWKS
  file, with the configured issuer and an ``aud`` naming the audience; ``exp`` is
  required. The file is read again when it changes (key rotation).

Answers: no or a malformed credential, a wrong signature, an expired or foreign-issuer
token is 401 (with ``WWW-Authenticate``); a valid credential that is not for this
broker (a token of another broker, a JWT for another audience) is 403. A key without
rules is open (the default on loopback).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

logger = logging.getLogger(__name__)

ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
)
MAX_CREDENTIAL: Final = 8192
MAX_JWKS_BYTES: Final = 1024 * 1024
_RECHECK: Final = 2.0  # seconds between looks at a JWKS file's modification time

OK: Final = 0


def digest(token: bytes) -> str:
    return hashlib.sha256(token).hexdigest()


@dataclass
class JwtRule:
    issuer: str
    audiences: list[str]
    jwks_file: str
    _keys: Any = None
    _mtime: float = -1.0
    _checked: float = 0.0

    def keys(self) -> Any:
        """The JWKS, read again when the file changed (looked at every few seconds)."""
        now = time.monotonic()
        if self._keys is None or now - self._checked > _RECHECK:
            self._checked = now
            try:
                mtime = os.stat(self.jwks_file).st_mtime
                if mtime != self._mtime:
                    with open(self.jwks_file, "rb") as handle:
                        raw = handle.read(MAX_JWKS_BYTES + 1)
                    if len(raw) > MAX_JWKS_BYTES:
                        raise ValueError("the JWKS file is too large")
                    self._keys = jwt.PyJWKSet.from_dict(json.loads(raw))
                    self._mtime = mtime
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                logger.warning("JWKS %s cannot be read: %s", self.jwks_file, exc)
        return self._keys


@dataclass
class Rule:
    """What one broker or webhook path accepts (any one of them suffices)."""

    token_digests: frozenset[str] = frozenset()
    jwt: JwtRule | None = None


@dataclass
class IngressAuth:
    rules: dict[str, Rule] = field(default_factory=dict)
    """Broker key (``namespace/name``) or webhook path -> its rule."""

    def __bool__(self) -> bool:
        return bool(self.rules)

    def check(self, key: str, authorization: str | None) -> tuple[int, str]:
        """``(0, "")`` when the request may go on, else ``(401 or 403, why)``."""
        rule = self.rules.get(key)
        if rule is None:
            return OK, ""
        if authorization is None:
            return 401, "authentication required: Authorization: Bearer <token>"
        if len(authorization) > MAX_CREDENTIAL or not authorization.isascii():
            return 401, "malformed Authorization header"
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return 401, "authentication required: Authorization: Bearer <token>"
        given = digest(credential.encode("ascii"))
        if any(hmac.compare_digest(given, d) for d in rule.token_digests):
            return OK, ""
        if rule.jwt is not None and credential.count(".") == 2:
            return self._check_jwt(rule.jwt, credential)
        if any(
            hmac.compare_digest(given, d)
            for other_key, other in self.rules.items()
            if other_key != key
            for d in other.token_digests
        ):
            return 403, "this token is not allowed to send here"
        return 401, "invalid token"

    def _check_jwt(self, rule: JwtRule, token: str) -> tuple[int, str]:
        keys = rule.keys()
        if keys is None:
            return 401, "invalid token"
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            candidates = [k for k in keys.keys if kid is None or k.key_id == kid]
            if not candidates:
                return 401, "invalid token: unknown key"
            jwt.decode(
                token,
                key=candidates[0],
                algorithms=list(ALGORITHMS),
                audience=rule.audiences,
                issuer=rule.issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=30,
            )
        except jwt.InvalidAudienceError:
            return 403, "this token is for another audience"
        except (jwt.PyJWTError, ValueError, TypeError):
            return 401, "invalid token"
        return OK, ""

    def to_json(self) -> dict[str, Any]:
        """The rules as JSON for an ingress worker (digests, never tokens)."""
        return {
            key: {
                "tokens": sorted(rule.token_digests),
                "jwt": None
                if rule.jwt is None
                else {
                    "issuer": rule.jwt.issuer,
                    "audiences": rule.jwt.audiences,
                    "jwksFile": rule.jwt.jwks_file,
                },
            }
            for key, rule in self.rules.items()
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> IngressAuth:
        rules: dict[str, Rule] = {}
        for key, value in raw.items():
            spec = value.get("jwt")
            rules[key] = Rule(
                frozenset(value.get("tokens", [])),
                None
                if spec is None
                else JwtRule(spec["issuer"], list(spec["audiences"]), spec["jwksFile"]),
            )
        return cls(rules)
