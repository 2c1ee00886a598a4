"""secretKeyRef resolution from the environment and from a secrets directory; errors
name the secret and where it was looked for, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventing.errors import ConfigError
from sources.support.secrets import SecretKeyRef, env_var_name, resolve_secret

REF = SecretKeyRef(name="github-secret", key="webhook.token")


def test_env_var_name() -> None:
    assert env_var_name(REF) == "EVENTING_SECRET_GITHUB_SECRET_WEBHOOK_TOKEN"


def test_environment_wins_over_directory(tmp_path: Path) -> None:
    (tmp_path / "github-secret").mkdir()
    (tmp_path / "github-secret" / "webhook.token").write_bytes(b"from-file\n")
    env = {"EVENTING_SECRET_GITHUB_SECRET_WEBHOOK_TOKEN": "from-env"}
    assert resolve_secret(REF, environ=env, secrets_dir=tmp_path).reveal() == b"from-env"


@pytest.mark.parametrize(
    ("content", "value"),
    [(b"abc\n", b"abc"), (b"abc\r\n", b"abc"), (b"abc", b"abc"), (b"abc\n\n", b"abc\n")],
)
def test_directory_strips_one_trailing_newline(
    tmp_path: Path, content: bytes, value: bytes
) -> None:
    (tmp_path / "github-secret").mkdir()
    (tmp_path / "github-secret" / "webhook.token").write_bytes(content)
    assert resolve_secret(REF, environ={}, secrets_dir=tmp_path).reveal() == value


def test_directory_from_environment_variable(tmp_path: Path) -> None:
    (tmp_path / "github-secret").mkdir()
    (tmp_path / "github-secret" / "webhook.token").write_bytes(b"v")
    env = {"EVENTING_SECRETS_DIR": str(tmp_path)}
    assert resolve_secret(REF, environ=env).reveal() == b"v"


def test_missing_secret_names_it_and_both_places(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_secret(REF, environ={}, secrets_dir=tmp_path, what="GitHubSource x/y")
    message = str(info.value)
    assert message.startswith("GitHubSource x/y: secret 'github-secret' key 'webhook.token'")
    assert "EVENTING_SECRET_GITHUB_SECRET_WEBHOOK_TOKEN" in message
    assert str(tmp_path / "github-secret" / "webhook.token") in message


def test_missing_without_directory_says_how_to_set_one() -> None:
    with pytest.raises(ConfigError, match="EVENTING_SECRETS_DIR"):
        resolve_secret(REF, environ={})


def test_empty_secret_is_an_error_without_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is empty"):
        resolve_secret(REF, environ={"EVENTING_SECRET_GITHUB_SECRET_WEBHOOK_TOKEN": ""})


def test_secret_hides_its_value() -> None:
    secret = resolve_secret(REF, environ={"EVENTING_SECRET_GITHUB_SECRET_WEBHOOK_TOKEN": "hunter2"})
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
