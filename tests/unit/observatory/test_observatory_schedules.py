"""A schedule's decisions in fake time, as a CronJob's: the run and its name at each tick, catch-up
once after downtime, the starting deadline, the three concurrency policies, history limits and
suspend. A name computed differently twice for one tick would run that tick twice."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from tests.unit.observatory import workflows as wf

from roadie.core import naming
from roadie.observatory import schedules

CREATED = datetime.datetime(2026, 5, 1, 9, 58, tzinfo=datetime.UTC)


def at(hour: int, minute: int = 0, second: int = 0, day: int = 1) -> datetime.datetime:
    return datetime.datetime(2026, 5, day, hour, minute, second, tzinfo=datetime.UTC)


def hourly(**fields: Any) -> Any:
    return wf.spec(wf.task("a"), schedule="0 * * * *", **fields)


def decide(spec: Any, now: datetime.datetime, last: datetime.datetime | None = None, runs: Any = ()) -> Any:
    return schedules.decide(spec, name="etl", created=CREATED, last_schedule_time=last, runs=list(runs), now=now)


def run(name: str, phase: str | None, hour: int) -> schedules.RunInfo:
    return schedules.RunInfo(name, phase, scheduled=at(hour), completed=at(hour, 5) if phase else None)


def test_run_names_follow_cronjobs_scheme() -> None:
    assert schedules.run_name("etl", at(10)) == f"etl-{int(at(10).timestamp()) // 60}"
    long = schedules.run_name("x" * 80, at(10))
    assert len(long) <= 63 and long.endswith(str(int(at(10).timestamp()) // 60))
    assert naming.dns_label(long) == long
    assert schedules.run_name("x" * 80, at(11)) != long


def test_nothing_before_the_first_tick_and_the_next_is_exact() -> None:
    decision = decide(hourly(), at(9, 59, 30))
    assert decision.create is None and decision.next_due == at(10) and decision.next_tick == at(10)


def test_a_tick_creates_one_run_named_after_it() -> None:
    decision = decide(hourly(), at(10, 0, 0))
    assert decision.create == schedules.Create(schedules.run_name("etl", at(10)), at(10))
    assert decision.last_schedule_time == at(10) and decision.active == [decision.create.name]
    assert decision.next_due == at(11)


def test_a_tick_whose_run_exists_is_not_run_again() -> None:
    """The run was created, the operator stopped before recording lastScheduleTime."""
    made = schedules.run_name("etl", at(10))
    decision = decide(hourly(), at(10, 0, 5), runs=[schedules.RunInfo(made, "Running", at(10))])
    assert decision.create is None and decision.last_schedule_time == at(10) and decision.active == [made]


def test_after_downtime_only_the_latest_tick_runs_once() -> None:
    decision = decide(hourly(), at(15, 20), last=at(10))
    assert decision.create is not None and decision.create.tick == at(15)
    assert "MissedSchedule" in {reason for reason, _ in decision.events}
    again = decide(hourly(), at(15, 21), last=decision.last_schedule_time)
    assert again.create is None


def test_too_late_for_the_starting_deadline() -> None:
    decision = decide(hourly(startingDeadlineSeconds=60), at(15, 2), last=at(14))
    assert decision.create is None and decision.next_due == at(16)
    assert any("startingDeadlineSeconds (60s)" in message for _, message in decision.events)


def test_allow_overlaps() -> None:
    decision = decide(hourly(), at(11), last=at(10), runs=[run("etl-old", "Running", 10)])
    assert decision.create is not None and decision.active == ["etl-old", decision.create.name]


def test_forbid_holds_the_tick_until_the_active_run_finishes() -> None:
    spec = hourly(concurrencyPolicy="Forbid")
    held = decide(spec, at(11), last=at(10), runs=[run("etl-old", "Running", 10)])
    assert held.create is None and held.last_schedule_time is None
    assert "still running (Forbid)" in held.message
    freed = decide(spec, at(11, 7), last=at(10), runs=[run("etl-old", "Succeeded", 10)])
    assert freed.create is not None and freed.create.tick == at(11)


def test_replace_deletes_the_active_run() -> None:
    decision = decide(hourly(concurrencyPolicy="Replace"), at(11), last=at(10), runs=[run("etl-old", "Running", 10)])
    assert decision.create is not None and decision.delete == ["etl-old"]
    assert decision.active == [decision.create.name]


def test_history_limits_keep_the_most_recent() -> None:
    runs = [run(f"ok-{h}", "Succeeded", h) for h in range(1, 6)] + [run(f"bad-{h}", "Failed", h) for h in (6, 7)]
    assert schedules.history_to_delete(hourly(), runs) == ["ok-1", "ok-2", "bad-6"]
    keep_none = hourly(successfulRunsHistoryLimit=0, failedRunsHistoryLimit=0)
    assert len(schedules.history_to_delete(keep_none, runs)) == 7


def test_suspend_creates_nothing_and_sleeps() -> None:
    decision = decide(
        hourly(suspend=True), at(11), last=at(10), runs=[run(f"ok-{h}", "Succeeded", h) for h in range(5)]
    )
    assert decision.create is None and decision.next_due is None and decision.message.startswith("suspended")
    assert decision.delete == ["ok-0", "ok-1"], "history limits still apply"


def test_resume_catches_up_the_latest_tick_like_cronjob() -> None:
    decision = decide(hourly(), at(13, 30), last=at(10))
    assert decision.create is not None and decision.create.tick == at(13)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"schedule": "61 * * * *"}, "spec.schedule"),
        ({"schedule": "0 * * * *", "timezone": "Nowhere/Land"}, "spec.timezone"),
    ],
)
def test_what_the_pattern_lets_through_is_named(fields: dict[str, str], problem: str) -> None:
    found = schedules.problem(wf.spec(wf.task("a"), **fields))
    assert found is not None and found.startswith(problem)
    assert schedules.problem(hourly()) is None


def test_runs_are_read_from_bodies_the_schedule_owns() -> None:
    mine = {"metadata": {"name": "etl-1", "ownerReferences": [{"uid": "u1"}],
                         "annotations": {"roadie.dev/scheduled-at": "2026-05-01T10:00:00Z"}},
            "status": {"phase": "Succeeded", "completionTime": "2026-05-01T10:05:00Z"}}  # fmt: skip
    other = {"metadata": {"name": "etl-2", "ownerReferences": [{"uid": "u2"}]}}
    (found,) = schedules.runs_of([mine, other], "u1")
    assert found == schedules.RunInfo("etl-1", "Succeeded", at(10), at(10, 5)) and found.finished


def test_a_schedule_in_a_time_zone() -> None:
    spec = wf.spec(wf.task("a"), schedule="0 9 * * *", timezone="America/New_York")
    decision = decide(spec, at(12))
    assert decision.create is None and decision.next_due == at(13)  # 09:00 EDT
