"""Helpers shared by the server-backed broker classes: backoff, secret masking,
config parsing. No client library here."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
MAX_ERROR_CHARS: Final = 300


def redact(text: str) -> str:
    """Mask a password in a URL (``amqp://user:***@host``)."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


def describe(exc: BaseException) -> str:
    """One line for status and logs: the exception type and its masked message."""
    message = str(exc).strip().replace("\n", " ")
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return redact(text)[:MAX_ERROR_CHARS]


@dataclass
class Backoff:
    """Exponential backoff with equal jitter, bounded; ``reset()`` after a success."""

    initial: float = 0.2
    maximum: float = 5.0
    attempt: int = field(default=0, init=False)

    def next(self) -> float:
        ceiling = float(min(self.maximum, self.initial * 2.0**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


class ConfigReader:
    """Typed reads of a broker's ConfigMap data that collect every problem."""

    def __init__(self, data: Mapping[str, str], known: set[str]) -> None:
        self.data = data
        self.problems: list[tuple[str, str]] = [
            (key, f"unknown key (known: {', '.join(sorted(known))})")
            for key in data
            if key not in known
        ]

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None or not value.strip():
            self.problems.append((key, "is required"))
            return ""
        return value.strip()

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        raw = self.data.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append((key, f"{raw[:40]!r} is not an integer"))
            return default
        if not low <= value <= high:
            self.problems.append((key, f"{value} is outside {low}..{high}"))
            return default
        return value

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if value not in allowed:
            self.problems.append((key, f"{value[:40]!r} is not one of {', '.join(allowed)}"))
            return default
        return value
