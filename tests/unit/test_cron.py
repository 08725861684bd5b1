"""Tick arithmetic of `roadie.core.cron` in fake time: what a schedule runs and when, across time
zones and daylight-saving changes, and CronJob's catch-up rule (the most recent missed tick, once,
within the starting deadline). A wrong answer here is a workflow run twice, or never."""

from __future__ import annotations

import datetime
import re

import pytest

from roadie.core import cron

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    "expr",
    ["*/15 * * * *", "0 3 * * *", "30 2 1 1 *", "0 0 * * MON-FRI", "0 0 ? * *", "0 0 L * *", "5 4 * * 1#2",
     "@daily", "@hourly", "@yearly", "0 9-17/2 * JAN,JUL *"],
)  # fmt: skip
def test_accepts_what_cronjob_accepts(expr: str) -> None:
    cron.validate(expr)
    assert re.match(cron.PATTERN, expr), "the CRD's pattern must let every valid expression through"


@pytest.mark.parametrize(
    ("expr", "by_pattern"),
    [
        ("", True),
        ("* * * *", True),  # four fields
        ("0 0 * * * *", True),  # six fields (seconds) are not CronJob's
        ("@every 5m", True),
        ("every day", True),
        ("61 * * * *", False),  # the shape is right, the value is not: only the parser knows
        ("0 25 * * *", False),
        ("0 0 32 * *", False),
    ],
)
def test_refuses_malformed_expressions_with_a_message(expr: str, by_pattern: bool) -> None:
    with pytest.raises(cron.CronError, match="invalid schedule"):
        cron.validate(expr)
    assert (re.match(cron.PATTERN, expr) is None) == by_pattern
    assert not cron.is_valid(expr)


def test_unknown_time_zone_is_named() -> None:
    with pytest.raises(cron.CronError, match="Mars/Olympus"):
        cron.next_tick("0 * * * *", at("2026-01-01T00:00:00Z"), "Mars/Olympus")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        cron.next_tick("0 * * * *", datetime.datetime(2026, 1, 1))


def test_next_tick_is_strictly_after_and_exact_to_the_second() -> None:
    assert cron.next_tick("*/15 * * * *", at("2026-05-01T10:00:00Z")) == at("2026-05-01T10:15:00Z")
    assert cron.next_tick("*/15 * * * *", at("2026-05-01T10:14:59Z")) == at("2026-05-01T10:15:00Z")
    assert cron.next_tick("@daily", at("2026-05-01T10:00:00Z")) == at("2026-05-02T00:00:00Z")


def test_time_zone_shifts_the_ticks() -> None:
    after = at("2026-01-15T00:00:00Z")
    assert cron.next_tick("0 9 * * *", after, "Asia/Tokyo") == at("2026-01-15T00:00:00Z") + datetime.timedelta(days=1)
    assert cron.next_tick("0 9 * * *", after, "America/New_York") == at("2026-01-15T14:00:00Z")
    assert cron.next_tick("0 9 * * *", after) == at("2026-01-15T09:00:00Z")


def ticks(expr: str, start: str, count: int, tz: str) -> list[datetime.datetime]:
    found, moment = [], at(start)
    for _ in range(count):
        moment = cron.next_tick(expr, moment, tz)
        found.append(moment)
    return found


def test_spring_forward_runs_a_skipped_wall_time_once_after_the_gap() -> None:
    # Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day
    found = ticks("30 2 * * *", "2026-03-28T00:00:00Z", 3, "Europe/Berlin")
    assert found == [at("2026-03-28T01:30:00Z"), at("2026-03-29T01:00:00Z"), at("2026-03-30T00:30:00Z")]


def test_fall_back_runs_a_fixed_time_once() -> None:
    # Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice
    found = ticks("30 2 * * *", "2026-10-24T00:00:00Z", 3, "Europe/Berlin")
    assert found == [at("2026-10-24T00:30:00Z"), at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]


def test_fall_back_keeps_elapsed_time_for_wildcard_hours() -> None:
    found = ticks("0 * * * *", "2026-10-24T23:30:00Z", 4, "Europe/Berlin")
    # 02:00 CEST (00:00Z), 02:00 CET (01:00Z): an hourly schedule runs every hour of real time
    assert found == [at(f"2026-10-25T0{h}:00:00Z") for h in range(4)]


def test_spring_forward_hourly_loses_no_real_hour() -> None:
    found = ticks("0 * * * *", "2026-03-28T23:30:00Z", 3, "Europe/Berlin")
    assert found == [at("2026-03-29T00:00:00Z"), at("2026-03-29T01:00:00Z"), at("2026-03-29T02:00:00Z")]


@pytest.mark.parametrize(
    ("expr", "moment", "tz", "expected"),
    [
        ("*/15 * * * *", "2026-05-01T10:20:00Z", None, "2026-05-01T10:15:00Z"),
        ("*/15 * * * *", "2026-05-01T10:15:00Z", None, "2026-05-01T10:15:00Z"),  # at, inclusive
        ("30 2 * * *", "2026-03-29T05:00:00Z", "Europe/Berlin", "2026-03-29T01:00:00Z"),  # after the gap
        ("30 2 * * *", "2026-10-25T05:00:00Z", "Europe/Berlin", "2026-10-25T00:30:00Z"),  # first occurrence
        ("@yearly", "2026-06-01T00:00:00Z", None, "2026-01-01T00:00:00Z"),
    ],
)
def test_latest_tick_is_the_inverse_of_next_tick(expr: str, moment: str, tz: str | None, expected: str) -> None:
    found = cron.latest_tick(expr, at(moment), tz)
    assert found == at(expected)
    assert cron.next_tick(expr, found - datetime.timedelta(seconds=1), tz) == found


CREATED = at("2026-05-01T09:58:00Z")


def test_nothing_is_due_before_the_first_tick() -> None:
    due = cron.due("0 * * * *", now=at("2026-05-01T09:59:00Z"), last=None, created=CREATED)
    assert due.tick is None and due.next == at("2026-05-01T10:00:00Z")


def test_a_tick_is_due_at_its_second() -> None:
    due = cron.due("0 * * * *", now=at("2026-05-01T10:00:00Z"), last=None, created=CREATED)
    assert due.tick == at("2026-05-01T10:00:00Z") and due.next == at("2026-05-01T11:00:00Z")
    assert not due.skipped_older


def test_a_tick_already_run_is_not_due_again() -> None:
    due = cron.due("0 * * * *", now=at("2026-05-01T10:00:30Z"), last=at("2026-05-01T10:00:00Z"), created=CREATED)
    assert due.tick is None and due.next == at("2026-05-01T11:00:00Z")


def test_a_day_of_missed_ticks_runs_once_the_most_recent() -> None:
    due = cron.due("0 * * * *", now=at("2026-05-02T10:30:00Z"), last=at("2026-05-01T10:00:00Z"), created=CREATED)
    assert due.tick == at("2026-05-02T10:00:00Z")
    assert due.skipped_older and due.too_late is None
    # and having run it, nothing more until the next hour
    again = cron.due("0 * * * *", now=at("2026-05-02T10:30:01Z"), last=due.tick, created=CREATED)
    assert again.tick is None


def test_starting_deadline_drops_a_tick_too_old_to_run() -> None:
    kwargs = {"last": at("2026-05-01T10:00:00Z"), "created": CREATED, "starting_deadline_seconds": 300}
    late = cron.due("0 * * * *", now=at("2026-05-01T11:05:01Z"), **kwargs)  # type: ignore[arg-type]
    assert late.tick is None and late.too_late == at("2026-05-01T11:00:00Z")
    assert late.next == at("2026-05-01T12:00:00Z")
    in_time = cron.due("0 * * * *", now=at("2026-05-01T11:05:00Z"), **kwargs)  # type: ignore[arg-type]
    assert in_time.tick == at("2026-05-01T11:00:00Z")


def test_catch_up_in_a_time_zone_across_fall_back() -> None:
    # down from 01:00Z to 03:10Z on the fall-back night: 02:30 CEST already ran, 02:30 CET is no tick
    due = cron.due(
        "30 2 * * *", now=at("2026-10-25T03:10:00Z"), last=at("2026-10-25T00:30:00Z"), created=CREATED,
        tz="Europe/Berlin",
    )  # fmt: skip
    assert due.tick is None and due.next == at("2026-10-26T01:30:00Z")


def test_a_date_that_never_comes_is_refused() -> None:
    with pytest.raises(cron.CronError, match="never comes"):
        cron.validate("0 0 31 2 *")
    cron.validate("0 0 29 2 *")  # leap days do come


def test_wildcard_hours_skip_the_wall_times_that_do_not_exist() -> None:
    found = ticks("*/30 * * * *", "2026-03-29T00:15:00Z", 3, "Europe/Berlin")
    # 01:30 CET, then 03:00 and 03:30 CEST: 02:00 and 02:30 never happen that night
    assert found == [at("2026-03-29T00:30:00Z"), at("2026-03-29T01:00:00Z"), at("2026-03-29T01:30:00Z")]


def test_a_fixed_time_in_the_gap_and_one_after_it_run_once_together() -> None:
    # 02:00 is shifted to 03:00 CEST, where the 03:00 tick already is: one run, not two
    found = ticks("0 2,3 * * *", "2026-03-28T23:00:00Z", 2, "Europe/Berlin")
    assert found == [at("2026-03-29T01:00:00Z"), at("2026-03-30T00:00:00Z")]


def test_half_hour_shifts_work_too() -> None:
    # Lord Howe Island falls back by 30 minutes at 02:00 on 2026-04-05: 01:45 happens twice
    found = ticks("45 1 * * *", "2026-04-04T13:00:00Z", 2, "Australia/Lord_Howe")
    assert found == [at("2026-04-04T14:45:00Z"), at("2026-04-05T15:15:00Z")]
