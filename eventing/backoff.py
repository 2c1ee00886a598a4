"""Backing off after a failure, and saying what failed without its secrets: what the
source adapters and the server-backed broker classes share when they reconnect
(:mod:`sources.support.reconnect`, :mod:`brokers.support`).

Why "equal jitter": half the delay fixed, half random, so many clients restarting
together do not reconnect in lock-step, yet none retries in a busy loop.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Final

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_KEY_VALUE_SECRET = re.compile(r"(?i)(?P<head>(password|passwd|secret|token)[=:]\s*)\S+")
MAX_ERROR_CHARS: Final = 300


def redact(text: str) -> str:
    """Mask passwords in URLs (``amqp://user:***@host``) and ``password=...`` pairs."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_VALUE_SECRET.sub(r"\g<head>***", text)


def describe(exc: BaseException) -> str:
    """One line for status, health and logs: the exception type and its masked message."""
    message = str(exc).strip().replace("\n", " ")
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return redact(text)[:MAX_ERROR_CHARS]


@dataclass
class Backoff:
    """Exponential backoff with equal jitter, bounded by ``maximum``; ``reset()``
    after a success."""

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    attempt: int = field(default=0, init=False)

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt = min(self.attempt + 1, 64)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0
