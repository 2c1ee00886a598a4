"""Test doubles for the webhook and ping sources: a recording ``emit`` that can be told
to fail, a fake clock whose ``sleep_until`` moves time instead of waiting, and request
and manifest builders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eventing.errors import StoreFullError
from eventing.events import Event
from sources.support.base import WebhookRequest
from tests.conftest import TESTDATA

GITHUB_DATA = TESTDATA / "github-webhooks"
GITLAB_DATA = TESTDATA / "gitlab-webhooks"
BROKER_SINK: dict[str, Any] = {
    "ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}
}


class RecordingEmit:
    """``emit`` that stores events in ``events``; the next ``fail`` calls raise
    ``StoreFullError`` (a ``StoreError``) instead."""

    def __init__(self, fail: int = 0) -> None:
        self.events: list[Event] = []
        self.calls = 0
        self.fail = fail

    async def __call__(self, events: Sequence[Event], /) -> None:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            error = StoreFullError("store full")
            error.retry_after = 2.5
            raise error
        self.events.extend(events)


class Stop(Exception):
    """Raised by :class:`FakeClock` to end a source's ``run`` loop in a test."""


class FakeClock:
    """``now`` and ``sleep_until`` for time logic: sleeping moves the clock to the
    target instantly; after ``max_sleeps`` sleeps it raises :class:`Stop`."""

    def __init__(self, start: datetime, max_sleeps: int = 100) -> None:
        self.current = start.astimezone(UTC)
        self.sleeps: list[datetime] = []
        self.max_sleeps = max_sleeps

    def now(self) -> datetime:
        return self.current

    async def sleep_until(self, moment: datetime) -> None:
        if len(self.sleeps) >= self.max_sleeps:
            raise Stop
        self.sleeps.append(moment)
        self.current = max(self.current, moment.astimezone(UTC))


def request(
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/webhooks/default/hook",
) -> WebhookRequest:
    """A request as the ingress builds it: header names lower-cased."""
    return WebhookRequest(
        method=method,
        path=path,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=body,
    )


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)
