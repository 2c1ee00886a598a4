"""Knative ``PingSource`` (``sources.knative.dev/v1``, ``v1beta2`` accepted): an event on
a cron schedule, in a time zone, with a policy for runs missed while down.

The event is Knative's: type ``dev.knative.sources.ping``, source
``/apis/v1/namespaces/<ns>/pingsources/<name>``, data from ``data`` (UTF-8, as written)
or ``dataBase64`` (decoded), ``datacontenttype`` = ``contentType`` when set. Ours on top:

* ``id`` is derived from the source and the scheduled time (UUIDv5), and ``time`` is
  the scheduled time, so a retried or re-fired run deduplicates on (source, id);
  Knative mints a random id per tick and stamps the send time;
* ``missedRuns`` (our field): ``skip`` (default, Knative's behaviour) fires only the
  current run, ``catchUp`` also fires runs missed while the process was down, at most
  ``maxCatchUpRuns`` (default 10, the most recent) and none older than
  ``catchUpWindow`` (default ``P1D``). Skipped runs are counted in ``drops``.
  The last handled run is kept in ``<state_dir>/pingsources/<ns>/<name>.json``;
* when the broker refuses (``StoreError``) a run is retried with backoff, with the same
  id, until the next run is due; then ``skip`` drops it (counted) and ``catchUp``
  keeps it due. An empty ``timezone`` means UTC (Knative: the adapter's zone).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, model_validator

from eventing.errors import ConfigError, StoreError
from eventing.events import AttributeValue, Event
from eventing.resources.base import KNATIVE_SOURCES_V1, Model, Resource
from eventing.resources.durations import Duration
from sources.ping.schedule import Schedule, parse_schedule, parse_timezone
from sources.support.base import Emit, SourceHealth
from sources.support.source_spec import (
    BrokerSink,
    CloudEventOverrides,
    apply_overrides,
    source_path,
)
from sources.support.webhook_fields import broker_key

EVENT_TYPE = "dev.knative.sources.ping"
KNATIVE_SOURCES_V1BETA2 = "sources.knative.dev/v1beta2"
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SleepUntil = Callable[[datetime], Awaitable[None]]


def _schedule(value: str) -> str:
    parse_schedule(value)
    return value


def _timezone(value: str) -> str:
    parse_timezone(value)
    return value


class PingSourceSpec(Model):
    schedule: Annotated[str, AfterValidator(_schedule)] = "* * * * *"
    timezone: Annotated[str, AfterValidator(_timezone)] | None = None
    content_type: str | None = None
    data: str | None = None
    data_base64: str | None = None
    sink: BrokerSink
    ce_overrides: CloudEventOverrides | None = None
    missed_runs: Literal["skip", "catchUp"] = "skip"
    max_catch_up_runs: int = Field(default=10, ge=1, le=1000)
    catch_up_window: Duration = Field(default=86400.0, gt=0)

    @model_validator(mode="after")
    def _data_fields(self) -> PingSourceSpec:
        if self.data and self.data_base64:
            raise ValueError("set at most one of 'data' and 'dataBase64'")
        payload = self.payload()
        media = (self.content_type or "").split(";", 1)[0].strip().lower()
        if payload is not None and media == "application/json":
            try:
                value = json.loads(payload)
            except (ValueError, RecursionError):
                value = None
            if not isinstance(value, dict):
                raise ValueError("with contentType application/json the data must be a JSON object")
        return self

    def payload(self) -> bytes | None:
        """The event data: ``data`` as UTF-8 or ``dataBase64`` decoded."""
        if self.data_base64:
            try:
                return base64.b64decode(self.data_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("'dataBase64' is not valid base64") from None
        return self.data.encode("utf-8") if self.data else None


class PingSource(Resource):
    API_VERSIONS: ClassVar[tuple[str, ...]] = (KNATIVE_SOURCES_V1, KNATIVE_SOURCES_V1BETA2)
    KIND: ClassVar[str] = "PingSource"

    api_version: Literal["sources.knative.dev/v1", "sources.knative.dev/v1beta2"]
    kind: Literal["PingSource"]
    spec: PingSourceSpec

    @property
    def event_source(self) -> str:
        return source_path(self.namespace, "pingsources", self.name)

    def make_schedule(self) -> Schedule:
        zone = ZoneInfo(self.spec.timezone) if self.spec.timezone else UTC
        return Schedule(self.spec.schedule, zone)


MODEL = PingSource


def run_id(source: str, scheduled: datetime) -> str:
    """The same id for the same run, whoever fires it and however often."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}#{_rfc3339(scheduled)}"))


def make_event(resource: PingSource, scheduled: datetime) -> Event:
    """The CloudEvent of the run scheduled at ``scheduled`` (pure)."""
    spec = resource.spec
    source = resource.event_source
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": run_id(source, scheduled),
        "source": source,
        "type": EVENT_TYPE,
        "time": _rfc3339(scheduled),
    }
    data = spec.payload()
    if spec.content_type and data is not None:
        attributes["datacontenttype"] = spec.content_type
    apply_overrides(attributes, spec.ce_overrides)
    return Event(attributes, data)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class PingAdapter:
    """Fires the schedule into ``emit`` until cancelled (``sources.support.base.Source``)."""

    def __init__(
        self,
        resource: PingSource,
        *,
        state_dir: Path,
        now: Clock | None = None,
        sleep_until: SleepUntil | None = None,
    ) -> None:
        self.resource = resource
        self.name = resource.key
        self.broker = broker_key(resource.spec.sink, resource.namespace)
        self.schedule = resource.make_schedule()
        self.health = SourceHealth(name=self.name, kind=PingSource.KIND)
        self.drops: Counter[str] = Counter()
        self.state_file = state_dir / "pingsources" / resource.namespace / f"{resource.name}.json"
        self._now = now or (lambda: datetime.now(UTC))
        self._sleep_until = sleep_until or self._real_sleep_until
        self._delay = RETRY_FIRST

    def __repr__(self) -> str:
        return f"PingAdapter({self.name!r}, schedule={self.schedule.expression!r})"

    async def run(self, emit: Emit) -> None:
        self.health.set_state("connected")
        cursor = self._start_cursor(self._now())
        catch_up = self.resource.spec.missed_runs == "catchUp"
        while True:
            now = self._now()
            due = self._due(cursor, now)
            if not due:
                await self._sleep_until(self.schedule.next_after(max(cursor, now)))
                continue
            for scheduled in due:
                stored = await self._fire(emit, scheduled)
                if not stored and catch_up:
                    await self._sleep_until(self._now() + timedelta(seconds=self._backoff()))
                    break
                if not stored:
                    self.drops["store_failed"] += 1
                cursor = scheduled
                self._save(cursor)

    def _due(self, cursor: datetime, now: datetime) -> list[datetime]:
        """Runs to fire now: the latest one (``skip``), or the missed ones within the
        bounds (``catchUp``); counts the rest in ``drops``."""
        spec = self.resource.spec
        if spec.missed_runs == "skip":
            latest = self.schedule.latest_at_or_before(now)
            if latest is None or latest <= cursor:
                return []
            self.drops["missed_run_skipped"] += self.schedule.count_between(cursor, latest)
            return [latest]
        floor = max(cursor, now - timedelta(seconds=spec.catch_up_window))
        runs = self.schedule.runs_back_from(now, floor, spec.max_catch_up_runs)
        if runs:
            self.drops["missed_run_not_caught_up"] += self.schedule.count_between(cursor, runs[0])
        return runs

    async def _fire(self, emit: Emit, scheduled: datetime) -> bool:
        """Store the run's event, retrying until the next run is due; True if stored."""
        event = make_event(self.resource, scheduled)
        deadline = self.schedule.next_after(scheduled)
        self.health.received += 1
        while True:
            try:
                await emit([event])
            except StoreError as exc:
                self.health.failed += 1
                self.health.last_error = f"broker could not store: {type(exc).__name__}"
                retry_at = self._now() + timedelta(seconds=self._backoff())
                if retry_at >= deadline:
                    return False
                await self._sleep_until(retry_at)
                continue
            self.health.emitted += 1
            self.health.set_state("connected")
            self._delay = RETRY_FIRST
            return True

    def _backoff(self) -> float:
        delay, self._delay = self._delay, min(self._delay * 2, RETRY_MAX)
        return delay

    def _start_cursor(self, now: datetime) -> datetime:
        """Where the schedule resumes: ``now`` for ``skip`` (missed runs counted), the
        last handled run for ``catchUp``; never before a run already handled."""
        last = self._load()
        if last is None:
            return now
        if self.resource.spec.missed_runs == "skip":
            if last < now:
                self.drops["missed_run_skipped"] += self.schedule.count_between(last, now)
            return max(last, now)
        return last

    def _load(self) -> datetime | None:
        try:
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
            last = datetime.fromisoformat(str(raw["lastRun"]).replace("Z", "+00:00"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning(
                "PingSource %s: unreadable state file %s, starting fresh",
                self.name,
                self.state_file,
            )
            return None
        return last.astimezone(UTC) if last.tzinfo else None

    def _save(self, last: datetime) -> None:
        """Record the last handled run atomically (write, fsync, rename)."""
        temporary = self.state_file.with_suffix(".tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump({"lastRun": _rfc3339(last), "schedule": self.schedule.expression}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(self.state_file)
        except OSError as exc:
            self.health.last_error = f"cannot write state file: {exc.strerror}"

    async def _real_sleep_until(self, moment: datetime) -> None:
        """Sleep in slices of at most 30 s, re-reading the wall clock after each, so a
        suspended machine or a clock step does not delay a run by the whole gap."""
        remaining = (moment - self._now()).total_seconds()
        while remaining > 0:
            await asyncio.sleep(min(remaining, 30.0))
            remaining = (moment - self._now()).total_seconds()


def build(
    resource: Resource,
    *,
    state_dir: Path | str | None = None,
    now: Clock | None = None,
    sleep_until: SleepUntil | None = None,
    **_: object,
) -> PingAdapter:
    """Construct the adapter (deps: ``state_dir`` required, the runtime's data
    directory; ``now`` and ``sleep_until`` for tests; others ignored)."""
    if not isinstance(resource, PingSource):
        raise TypeError(f"expected a PingSource, got {type(resource).__name__}")
    if state_dir is None:
        raise ConfigError(f"PingSource {resource.key}: build() needs state_dir")
    return PingAdapter(resource, state_dir=Path(state_dir), now=now, sleep_until=sleep_until)
