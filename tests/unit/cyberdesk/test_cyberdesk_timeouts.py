"""Timeout arithmetic without a clock: the deadline counts from when the desktop first ran (from
creation while it never has), the warning comes a setting before it, the VM is halted at the
deadline and deleted once stopped or a grace period after the halt, and raising timeoutMs moves
the deadline (and warns again)."""

from __future__ import annotations

import datetime

from roadie.cyberdesk import timeouts

T0 = datetime.datetime(2026, 3, 1, 9, 0, 0, tzinfo=datetime.UTC)
MIN = datetime.timedelta(minutes=1)
TIMING = timeouts.Timing(warning=5 * MIN, grace=2 * MIN)


def _due(timeout_ms: int = 3_600_000, started: datetime.datetime | None = T0 + MIN) -> timeouts.Deadlines:
    return timeouts.deadlines(timeout_ms=timeout_ms, created_at=T0, started_at=started, warning=TIMING.warning)


def _step(now: datetime.datetime, due: timeouts.Deadlines, **kw: object) -> timeouts.Step:
    args: dict[str, object] = {"warned": False, "halted_at": None, "vm_exists": True, "vm_stopped": False}
    return timeouts.step(now=now, due=due, timing=TIMING, **(args | kw))  # type: ignore[arg-type]


def test_the_deadline_counts_from_when_it_started_running() -> None:
    due = _due()
    assert due.expires_at == T0 + MIN + 60 * MIN and due.from_start
    assert due.warn_at == due.expires_at - 5 * MIN
    exact = _due(timeout_ms=1500, started=T0)
    assert exact.expires_at == T0 + datetime.timedelta(milliseconds=1500)


def test_a_desktop_that_never_ran_is_counted_from_creation() -> None:
    due = _due(started=None)
    assert due.expires_at == T0 + 60 * MIN and not due.from_start


def test_a_warning_longer_than_the_timeout_warns_at_once() -> None:
    due = _due(timeout_ms=60_000)
    assert due.warn_at == T0 + MIN


def test_before_the_window_the_next_look_is_the_warning() -> None:
    due = _due()
    assert _step(T0 + 10 * MIN, due) == timeouts.Step(next_at=due.warn_at)


def test_in_the_window_warn_once_then_wait_for_the_deadline() -> None:
    due = _due()
    now = due.warn_at + datetime.timedelta(seconds=1)
    assert timeouts.in_warning_window(now, due)
    assert _step(now, due) == timeouts.Step(warn=True, next_at=due.expires_at)
    assert _step(now, due, warned=True) == timeouts.Step(next_at=due.expires_at)
    assert timeouts.remaining(now, due) == 5 * MIN - datetime.timedelta(seconds=1)


def test_at_the_deadline_halt_then_delete_after_grace_or_once_stopped() -> None:
    due = _due()
    assert _step(due.expires_at, due, warned=True) == timeouts.Step(halt=True, next_at=due.expires_at + 2 * MIN)
    halted = due.expires_at
    assert _step(halted + MIN, due, halted_at=halted) == timeouts.Step(next_at=halted + 2 * MIN)
    assert _step(halted + MIN, due, halted_at=halted, vm_stopped=True) == timeouts.Step(delete=True)
    assert _step(halted + 2 * MIN, due, halted_at=halted) == timeouts.Step(delete=True)
    assert _step(halted + 3 * MIN, due, halted_at=halted, vm_exists=False) == timeouts.Step()
    assert timeouts.remaining(halted + MIN, due) == datetime.timedelta(0)


def test_raising_timeout_moves_the_deadline_and_the_warning() -> None:
    before = _due(timeout_ms=3_600_000)
    now = before.warn_at + MIN  # warned, 4 minutes left
    after = _due(timeout_ms=7_200_000)
    assert after.expires_at == before.expires_at + 60 * MIN
    assert not timeouts.in_warning_window(now, after)
    assert _step(now, after, warned=True) == timeouts.Step(next_at=after.warn_at)
    assert _step(after.warn_at, after, warned=False).warn  # the moved deadline warns again


def test_lowering_timeout_below_the_elapsed_time_halts_now() -> None:
    due = _due(timeout_ms=1000)
    assert _step(T0 + 10 * MIN, due).halt


def test_once_halted_raising_timeout_changes_nothing() -> None:
    halted = T0 + 61 * MIN
    raised = _due(timeout_ms=10 * 3_600_000)
    assert _step(halted + MIN, raised, halted_at=halted).next_at == halted + 2 * MIN
