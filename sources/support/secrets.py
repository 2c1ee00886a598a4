"""Resolve Knative ``secretKeyRef``s on one machine, without a Kubernetes API.

Knative's GitHubSource and GitLabSource point at a Kubernetes Secret
(``secretToken: {secretKeyRef: {name, key}}``). So that those manifests load unchanged,
a reference is resolved from, in this order:

1. the environment variable ``EVENTING_SECRET_<NAME>_<KEY>`` (name and key upper-cased,
   every character other than A-Z and 0-9 replaced by ``_``), for example
   ``EVENTING_SECRET_GITHUB_SECRET_TOKEN`` for ``{name: github-secret, key: token}``;
2. the file ``<secrets dir>/<name>/<key>``, the layout of a Secret mounted as a volume.
   The directory is the ``secrets_dir`` the composition root passes, or else
   ``$EVENTING_SECRETS_DIR``. One trailing newline is stripped (``echo x > file`` adds
   one and a webhook secret never ends in one).

The environment wins so a single secret can be overridden for a test run. Secrets are
not namespaced: two namespaces that name the same Secret share it. ``optional: true``
is accepted (Kubernetes allows it) but the webhook sources need their secret, so a
missing one is still an error.

Why a wrapper type: a :class:`Secret` prints as ``Secret(<redacted>)`` in reprs, logs,
health and tracebacks, and every error raised here names the secret and where it was
looked for, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator, Field

from eventing.errors import ConfigError
from eventing.resources.base import Model

ENV_PREFIX: Final = "EVENTING_SECRET_"
SECRETS_DIR_ENV: Final = "EVENTING_SECRETS_DIR"
MAX_SECRET_BYTES: Final = 64 * 1024

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")
_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def _secret_name(value: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        raise ValueError(
            "must be a Kubernetes Secret name: lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        )
    return value


def _secret_key(value: str) -> str:
    if len(value) > 253 or not _KEY.match(value) or value in (".", ".."):
        raise ValueError(
            "must be a Secret key: letters, digits, '-', '_' and '.', at most 253 characters"
        )
    return value


class SecretKeyRef(Model):
    """Kubernetes ``SecretKeySelector``: which key of which Secret."""

    name: Annotated[str, AfterValidator(_secret_name)]
    key: Annotated[str, AfterValidator(_secret_key)]
    optional: bool = False


class SecretValueFromSource(Model):
    """Knative's ``SecretValueFromSource``: ``{secretKeyRef: {name, key}}``."""

    secret_key_ref: SecretKeyRef = Field(alias="secretKeyRef")


class Secret:
    """A secret value that never shows itself: use :meth:`reveal` where it is compared."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:  # identity only: no accidental comparisons
        return self is other

    __hash__ = object.__hash__


def env_var_name(ref: SecretKeyRef) -> str:
    """``EVENTING_SECRET_<NAME>_<KEY>`` with every non-alphanumeric character as ``_``."""
    return (
        ENV_PREFIX
        + _NOT_ALNUM.sub("_", ref.name.upper())
        + "_"
        + _NOT_ALNUM.sub("_", ref.key.upper())
    )


def resolve_secret(
    ref: SecretKeyRef,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | str | None = None,
    what: str = "secret",
) -> Secret:
    """The value of ``ref``; raise :class:`ConfigError` naming where it was looked for.

    ``what`` says who needs it (e.g. ``"GitHubSource default/repo spec.secretToken"``)
    so the error points at the manifest field.
    """
    env = os.environ if environ is None else environ
    variable = env_var_name(ref)
    from_env = env.get(variable)
    if from_env is not None:
        return _non_empty(from_env.encode("utf-8"), ref, what, f"environment variable {variable}")
    directory = secrets_dir if secrets_dir is not None else env.get(SECRETS_DIR_ENV)
    if directory:
        path = Path(directory) / ref.name / ref.key
        value = _read_file(path, ref, what)
        if value is not None:
            return _non_empty(value, ref, what, f"file {path}")
        tried = f"environment variable {variable} or file {path}"
    else:
        tried = (
            f"environment variable {variable}, or set {SECRETS_DIR_ENV} and create "
            f"<dir>/{ref.name}/{ref.key}"
        )
    raise ConfigError(f"{what}: secret {ref.name!r} key {ref.key!r} not found: set {tried}")


def _read_file(path: Path, ref: SecretKeyRef, what: str) -> bytes | None:
    try:
        with path.open("rb") as handle:
            value = handle.read(MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"{what}: secret {ref.name!r} key {ref.key!r}: cannot read {path}: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    if len(value) > MAX_SECRET_BYTES:
        raise ConfigError(
            f"{what}: secret {ref.name!r} key {ref.key!r}: {path} is larger than "
            f"{MAX_SECRET_BYTES} bytes"
        )
    if value.endswith(b"\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith(b"\n") else value


def _non_empty(value: bytes, ref: SecretKeyRef, what: str, where: str) -> Secret:
    if not value:
        raise ConfigError(f"{what}: secret {ref.name!r} key {ref.key!r} is empty in {where}")
    return Secret(value)
