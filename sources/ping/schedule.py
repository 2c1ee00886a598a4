"""Cron schedules in a time zone, and which runs are due after a gap (pure functions).

The schedule language is Knative PingSource's (robfig/cron ``ParseStandard``): five
fields, or ``@yearly``/``@annually``/``@monthly``/``@weekly``/``@daily``/``@midnight``/
``@hourly``. ``@every`` is refused as in Knative; six-field (seconds) forms are refused.
croniter computes the times, in the schedule's zone.

Daylight-saving edges (tests pin both):

* a wall time skipped when clocks go forward (02:30 on a spring-forward night) fires
  once, at the end of the gap (03:00), croniter's behaviour;
* a wall time that happens twice when clocks go back fires once, at its first
  occurrence, when the hour field is fixed (``30 2 * * *``); when the hour field starts
  with ``*`` (``*/30 * * * *``) the job is an interval and fires in both passes. This is
  Vixie cron's rule; croniter alone would fire a fixed-hour job twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

DESCRIPTORS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: Guard against schedules that never (or almost never) match, e.g. ``0 0 31 2 *``.
_MAX_STEPS: Final = 100_000


def parse_schedule(expression: str) -> str:
    """The five-field form of ``expression``; ``ValueError`` says what is allowed."""
    text = " ".join(expression.split())
    text = DESCRIPTORS.get(text.lower(), text)
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"{expression[:80]!r} is not a cron schedule: use five fields "
            "(minute hour day-of-month month day-of-week) such as '*/5 * * * *', or one of "
            f"{', '.join(DESCRIPTORS)} (@every is not supported)"
        )
    return text


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone such as ``Europe/Berlin``; ``ValueError`` otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{name[:80]!r} is not an IANA time zone name such as 'Europe/Berlin' or 'UTC'"
        ) from None


class Schedule:
    """The run times of a cron expression in a zone, returned as UTC datetimes.

    Why UTC out: Python compares two datetimes that share a ``tzinfo`` by wall time,
    ignoring ``fold``, so 02:30 CEST would sort after 02:00 CET. In UTC, order is real."""

    def __init__(self, expression: str, zone: tzinfo) -> None:
        self.expression = parse_schedule(expression)
        self.zone = zone
        self._fixed_hour = not self.expression.split(" ")[1].startswith("*")

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after ``moment`` (aware)."""
        return next(self._walk(moment, backwards=False))

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last run at or before ``moment``, or ``None`` if there is none."""
        return next(self._walk(moment + timedelta(seconds=1), backwards=True, limit=moment), None)

    def runs_back_from(self, moment: datetime, after: datetime, count: int) -> list[datetime]:
        """Up to ``count`` most recent runs in ``(after, moment]``, oldest first."""
        runs: list[datetime] = []
        floor = after.astimezone(UTC)
        for run in self._walk(moment + timedelta(seconds=1), backwards=True, limit=moment):
            if run <= floor or len(runs) == count:
                break
            runs.append(run)
        return runs[::-1]

    def count_between(self, after: datetime, until: datetime, cap: int = 10_000) -> int:
        """How many runs fall in ``(after, until)``, counting at most ``cap``."""
        total = 0
        end = until.astimezone(UTC)
        for run in self._walk(after, backwards=False):
            if run >= end or total >= cap:
                break
            total += 1
        return total

    def _walk(
        self, start: datetime, *, backwards: bool, limit: datetime | None = None
    ) -> Iterator[datetime]:
        """Runs from ``start`` on (or back), without repeated fixed-hour wall times and
        strictly monotonic in real time; backwards walks skip runs after ``limit``."""
        it = croniter(self.expression, start.astimezone(self.zone))
        bound = None if limit is None else limit.astimezone(UTC)
        previous: datetime | None = None
        for _ in range(_MAX_STEPS):
            local: datetime = it.get_prev(datetime) if backwards else it.get_next(datetime)
            if self._fixed_hour and _is_second_pass(local, self.zone):
                continue
            run = local.astimezone(UTC)
            if bound is not None and run > bound:
                continue
            if previous is not None and (run >= previous if backwards else run <= previous):
                continue
            previous = run
            yield run


def _is_second_pass(moment: datetime, zone: tzinfo) -> bool:
    """True when ``moment`` is the later of two instants with the same wall time."""
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    return first != second and local.utcoffset() == second
