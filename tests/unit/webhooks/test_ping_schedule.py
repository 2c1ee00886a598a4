"""Cron schedules in a time zone, including both daylight-saving edges."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sources.ping.schedule import Schedule, parse_schedule, parse_timezone
from tests.unit.webhooks.support import utc

BERLIN = ZoneInfo("Europe/Berlin")


def runs(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    for _ in range(count):
        start = schedule.next_after(start)
        out.append(start)
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("  0   9 * * 1-5 ", "0 9 * * 1-5"),
        ("@WEEKLY", "0 0 * * 0"),
    ],
)
def test_parse_schedule(text: str, expected: str) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    "text", ["@every 5m", "@reboot", "* * * *", "0 * * * * *", "61 * * * *", ""]
)
def test_parse_schedule_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a cron schedule"):
        parse_schedule(text)


def test_parse_timezone() -> None:
    assert parse_timezone("Europe/Berlin") == BERLIN
    for bad in ("Mars/Olympus", "/etc/passwd", "../x", ""):
        with pytest.raises(ValueError, match="IANA"):
            parse_timezone(bad)


def test_schedule_runs_in_its_zone_summer_and_winter() -> None:
    nine = Schedule("0 9 * * *", BERLIN)
    assert nine.next_after(utc(2024, 7, 1)) == utc(2024, 7, 1, 7)  # CEST, UTC+2
    assert nine.next_after(utc(2024, 1, 1)) == utc(2024, 1, 1, 8)  # CET, UTC+1


def test_spring_forward_skipped_time_fires_once_at_the_end_of_the_gap() -> None:
    # 2024-03-31 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    daily = Schedule("30 2 * * *", BERLIN)
    assert runs(daily, utc(2024, 3, 30, 12), 3) == [
        utc(2024, 3, 31, 1, 0),  # 03:00 CEST
        utc(2024, 4, 1, 0, 30),  # 02:30 CEST
        utc(2024, 4, 2, 0, 30),
    ]


def test_fall_back_repeated_time_fires_once_for_a_fixed_hour_job() -> None:
    # 2024-10-27 in Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    daily = Schedule("30 2 * * *", BERLIN)
    assert runs(daily, utc(2024, 10, 26, 12), 3) == [
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST, the first pass only
        utc(2024, 10, 28, 1, 30),  # 02:30 CET
        utc(2024, 10, 29, 1, 30),
    ]


def test_fall_back_interval_job_fires_in_both_passes() -> None:
    half_hourly = Schedule("*/30 * * * *", BERLIN)
    assert runs(half_hourly, utc(2024, 10, 26, 23, 45), 5) == [
        utc(2024, 10, 27, 0, 0),  # 02:00 CEST
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST
        utc(2024, 10, 27, 1, 0),  # 02:00 CET
        utc(2024, 10, 27, 1, 30),  # 02:30 CET
        utc(2024, 10, 27, 2, 0),  # 03:00 CET
    ]


def test_backward_walks_agree_with_forward_walks_across_dst() -> None:
    for expression in ("30 2 * * *", "*/30 * * * *", "0 */2 * * *"):
        schedule = Schedule(expression, BERLIN)
        start, end = utc(2024, 10, 25), utc(2024, 10, 29)
        forward = [r for r in runs(schedule, start, 200) if r <= end]
        backward = schedule.runs_back_from(end, start, 1000)
        assert backward == forward, expression
        assert schedule.count_between(start, end) == len([r for r in forward if r < end])


def test_latest_at_or_before_includes_the_moment_itself() -> None:
    minutely = Schedule("* * * * *", UTC)
    assert minutely.latest_at_or_before(utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 1, 10, 5)
    assert minutely.latest_at_or_before(utc(2024, 1, 1, 10, 5, 30)) == utc(2024, 1, 1, 10, 5)
    assert minutely.runs_back_from(utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 10, 2), 10) == [
        utc(2024, 1, 1, 10, 3),
        utc(2024, 1, 1, 10, 4),
        utc(2024, 1, 1, 10, 5),
    ]
    assert minutely.runs_back_from(utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 9), 2) == [
        utc(2024, 1, 1, 10, 4),
        utc(2024, 1, 1, 10, 5),
    ]
