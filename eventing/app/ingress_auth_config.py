"""Ingress authentication rules from the manifests' annotations.

Knative has no field for it, so (like our other extensions) it is annotations, on a
``Broker`` or on a webhook source (``WebhookSource``, ``GitHubSource``,
``GitLabSource``), which then requires it in addition to its own checks:

``eventing.local/auth-bearer-secret: <secret name>/<key>``
    the secret holds the accepted tokens, one per line (resolved like every
    ``secretKeyRef``: ``EVENTING_SECRET_<NAME>_<KEY>`` or ``<secrets dir>/<name>/<key>``);
``eventing.local/auth-jwt-issuer``, ``eventing.local/auth-jwt-audience`` (comma
separated), ``eventing.local/auth-jwt-jwks-file``
    JWTs signed by a key of that JWKS file, for that issuer and audience.

See :mod:`eventing.ingress.auth` for what is checked and answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from eventing.errors import ConfigError
from eventing.ingress.auth import IngressAuth, JwtRule, Rule, digest
from eventing.resources.loader import ResourceSet
from sources.support.secrets import SecretKeyRef, resolve_secret

PREFIX: Final = "eventing.local/auth-"
BEARER: Final = PREFIX + "bearer-secret"
ISSUER: Final = PREFIX + "jwt-issuer"
AUDIENCE: Final = PREFIX + "jwt-audience"
JWKS: Final = PREFIX + "jwt-jwks-file"


def ingress_auth(
    resources: ResourceSet, webhooks: Iterable[Any], secrets_dir: Path | None = None
) -> IngressAuth:
    """The rules of every Broker (by ``namespace/name``) and webhook source (by path)
    that asks for authentication."""
    auth = IngressAuth()
    for resource in resources.resources:
        if resource.kind == "Broker":
            rule = _rule(resource, secrets_dir)
            if rule is not None:
                auth.rules[resource.key] = rule
    for source in webhooks:
        manifest = getattr(source, "resource", None)
        if manifest is not None:
            rule = _rule(manifest, secrets_dir)
            if rule is not None:
                auth.rules[source.path] = rule
    return auth


def _rule(resource: Any, secrets_dir: Path | None) -> Rule | None:
    notes: dict[str, str] = resource.metadata.annotations
    if not any(k.startswith(PREFIX) for k in notes):
        return None
    what = f"{resource.kind} {resource.key} metadata.annotations"
    digests: frozenset[str] = frozenset()
    if BEARER in notes:
        name, _, key = notes[BEARER].partition("/")
        try:
            ref = SecretKeyRef(name=name, key=key)
        except ValueError:
            raise ConfigError(f"{what}[{BEARER}] must be <secret name>/<key>") from None
        secret = resolve_secret(ref, secrets_dir=secrets_dir, what=f"{what}[{BEARER}]")
        tokens = [t.strip() for t in secret.reveal().splitlines() if t.strip()]
        digests = frozenset(digest(t) for t in tokens)
    jwt_rule = None
    jwt_keys = [k for k in (ISSUER, AUDIENCE, JWKS) if k in notes]
    if jwt_keys:
        if len(jwt_keys) != 3:
            raise ConfigError(f"{what}: set all of {ISSUER}, {AUDIENCE} and {JWKS}")
        audiences = [a.strip() for a in notes[AUDIENCE].split(",") if a.strip()]
        if not audiences:
            raise ConfigError(f"{what}[{AUDIENCE}] names no audience")
        jwt_rule = JwtRule(notes[ISSUER], audiences, notes[JWKS])
        if jwt_rule.keys() is None:
            raise ConfigError(f"{what}[{JWKS}]: cannot read a JWKS from {notes[JWKS]}")
    if not digests and jwt_rule is None:
        raise ConfigError(f"{what}: {BEARER} or the {PREFIX}jwt-* annotations are incomplete")
    return Rule(digests, jwt_rule)
