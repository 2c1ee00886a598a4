"""The shared reconnect loop and backoff (sources/support/reconnect.py): delays grow while
sessions fail and stay bounded, a reset brings them back down, the health state and
counters follow, and secrets never reach ``last_error``."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sources.support.base import SourceHealth
from sources.support.reconnect import Backoff, describe, keep_connected, redact

log = logging.getLogger("test")


def test_backoff_grows_with_equal_jitter_and_is_bounded() -> None:
    backoff = Backoff(initial=0.1, maximum=5.0)
    delays = [backoff.next() for _ in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(5.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.attempt == 12
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next() <= 0.1


class Sessions:
    """A session that fails ``failures`` times, calling ``progress`` on the listed
    attempts (as an adapter resets its backoff after acknowledging a message), and then
    cancels the loop."""

    def __init__(self, backoff: Backoff, failures: int, progress_on: set[int]) -> None:
        self.backoff, self.failures, self.progress_on = backoff, failures, progress_on
        self.calls = 0
        self.attempts_seen: list[int] = []

    async def __call__(self) -> None:
        self.calls += 1
        self.attempts_seen.append(self.backoff.attempt)
        if self.calls in self.progress_on:
            self.backoff.reset()
        if self.calls > self.failures:
            raise asyncio.CancelledError
        raise OSError("connection reset")


async def test_keep_connected_grows_the_delay_until_a_session_makes_progress() -> None:
    health = SourceHealth("test/source", "Test")
    backoff = Backoff(initial=0.001, maximum=0.004)
    sessions = Sessions(backoff, failures=6, progress_on={4})
    with pytest.raises(asyncio.CancelledError):
        await keep_connected(health, sessions, transient=(OSError,), backoff=backoff, log=log)
    # the attempt count seen by each session: it grows while sessions fail; session 4
    # made progress (reset), so its loss starts the growth again from the first step
    assert sessions.attempts_seen == [0, 1, 2, 3, 1, 2, 3]
    assert health.reconnects == 6
    assert health.state == "stopped"
    assert health.last_error == "OSError: connection reset"


async def test_keep_connected_marks_a_non_transient_error_failed() -> None:
    health = SourceHealth("test/source", "Test")

    async def session() -> None:
        raise ValueError("bad config password=hunter2")

    with pytest.raises(ValueError):
        await keep_connected(health, session, transient=(OSError,), backoff=Backoff(), log=log)
    assert health.state == "failed"
    assert "hunter2" not in (health.last_error or "")


def test_secrets_are_masked() -> None:
    assert redact("amqp://app:s3cret@host:5672/") == "amqp://app:***@host:5672/"
    assert "s3cret" not in describe(OSError("mqtt://u:s3cret@h failed, token=s3cret"))
