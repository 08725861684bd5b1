"""The deadline scheduler behind expiry, expiry warnings and provisioning deadlines.

A Workshop is deleted when its entry here fires, so an entry that fires early, late, twice, after
being replaced or cancelled, or never (because an earlier callback failed), deletes or keeps a
workshop at the wrong time. These tests run the real `run()` loop on asyncio with an injected clock
that the test moves by hand; the loop sleeps in real seconds for the delay it reads from that
clock, so entries sit a few hundredths of a "second" ahead and every test finishes in well under
a second. They also check the reason the scheduler exists: ten thousand pending deadlines cost
heap entries, not tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable

import pytest

from roadie.core import schedule

START = 1_000_000.0
SETTLE = 0.05  # real seconds in which a loop that sleeps 0.01 at a time would have fired anything due


class Clock:
    """The scheduler's notion of now, moved only by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Callbacks that note, in order, which key fired, and a way to wait for them."""

    def __init__(self) -> None:
        self.fired: list[Hashable] = []
        self._changed = asyncio.Condition()

    def callback(self, label: Hashable) -> schedule.Callback:
        async def fire() -> None:
            async with self._changed:
                self.fired.append(label)
                self._changed.notify_all()

        return fire

    async def until(self, check: Callable[[list[Hashable]], bool], within: float = 2.0) -> None:
        """Wait (real time) until `check(fired)` holds; a TimeoutError fails the test."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: check(self.fired))


@contextlib.asynccontextmanager
async def running(scheduler: schedule.Scheduler) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def scheduler(clock: Clock) -> schedule.Scheduler:
    return schedule.Scheduler(clock=clock)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def test_entries_fire_in_time_order_not_insertion_order(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    for label, offset in (("late", 0.03), ("early", 0.01), ("middle", 0.02)):
        scheduler.at(label, START + offset, recorder.callback(label))
    async with running(scheduler):
        clock.now = START + 1  # all due at once: still fired earliest first
        await recorder.until(lambda fired: len(fired) == 3)
    assert recorder.fired == ["early", "middle", "late"]
    assert len(scheduler) == 0


async def test_entries_fire_only_once_their_time_has_come(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    for label, offset in (("a", 0.01), ("b", 0.02), ("c", 0.03)):
        scheduler.at(label, START + offset, recorder.callback(label))
    async with running(scheduler):
        await asyncio.sleep(SETTLE)
        assert recorder.fired == []

        clock.now = START + 0.015
        await recorder.until(lambda fired: fired == ["a"])
        await asyncio.sleep(SETTLE)
        assert recorder.fired == ["a"]
        assert set(scheduler.pending()) == {"b", "c"}

        clock.now = START + 0.025
        await recorder.until(lambda fired: fired == ["a", "b"])
        await asyncio.sleep(SETTLE)
        assert recorder.fired == ["a", "b"]

        clock.now = START + 0.035
        await recorder.until(lambda fired: fired == ["a", "b", "c"])
    assert scheduler.pending() == {}


async def test_entries_fire_on_the_real_clock_at_datetimes(recorder: Recorder) -> None:
    """Without an injected clock, the scheduler reads UTC wall time; `when` may be a datetime."""
    scheduler = schedule.Scheduler()
    now = datetime.datetime.now(datetime.UTC)
    for label, ms in (("third", 45), ("first", 15), ("second", 30)):
        scheduler.at(label, now + datetime.timedelta(milliseconds=ms), recorder.callback(label))
    async with running(scheduler):
        await recorder.until(lambda fired: len(fired) == 3)
    assert recorder.fired == ["first", "second", "third"]
    assert time.time() >= (now + datetime.timedelta(milliseconds=45)).timestamp()


def test_at_accepts_a_datetime_as_epoch_seconds(scheduler: schedule.Scheduler, recorder: Recorder) -> None:
    when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    scheduler.at("key", when, recorder.callback("key"))
    assert scheduler.pending() == {"key": when.timestamp()}


async def test_rescheduling_a_key_later_replaces_it(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    scheduler.at("expiry", START + 0.01, recorder.callback("old"))
    scheduler.at("expiry", START + 0.03, recorder.callback("new"))
    assert scheduler.pending() == {"expiry": START + 0.03}
    async with running(scheduler):
        clock.now = START + 0.02  # past the old time only
        await asyncio.sleep(SETTLE)
        assert recorder.fired == []

        clock.now = START + 0.04
        await recorder.until(lambda fired: fired == ["new"])
        await asyncio.sleep(SETTLE)
    assert recorder.fired == ["new"]


async def test_rescheduling_a_key_earlier_replaces_it(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    scheduler.at("expiry", START + 0.03, recorder.callback("old"))
    async with running(scheduler):
        await asyncio.sleep(0.005)  # the loop is now asleep until the old time
        scheduler.at("expiry", START + 0.01, recorder.callback("new"))
        clock.now = START + 0.02
        await recorder.until(lambda fired: fired == ["new"])

        clock.now = START + 1  # the old time passes too: nothing more fires
        await asyncio.sleep(SETTLE)
    assert recorder.fired == ["new"]
    assert len(scheduler) == 0


async def test_rescheduling_at_the_same_time_replaces_the_callback(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    scheduler.at("expiry", START + 0.01, recorder.callback("old"))
    scheduler.at("expiry", START + 0.01, recorder.callback("new"))
    assert len(scheduler) == 1
    async with running(scheduler):
        clock.now = START + 0.02
        await recorder.until(bool)
        await asyncio.sleep(SETTLE)
    assert recorder.fired == ["new"]


async def test_moving_a_key_away_and_back_fires_it_once(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    scheduler.at("expiry", START + 0.01, recorder.callback("first"))
    scheduler.at("expiry", START + 0.02, recorder.callback("second"))
    scheduler.at("expiry", START + 0.01, recorder.callback("third"))
    async with running(scheduler):
        clock.now = START + 1
        await recorder.until(bool)
        await asyncio.sleep(SETTLE)
    assert recorder.fired == ["third"]


async def test_cancel_removes_only_that_key(scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder) -> None:
    scheduler.at("a", START + 0.01, recorder.callback("a"))
    scheduler.at("b", START + 0.01, recorder.callback("b"))
    scheduler.cancel("a")
    scheduler.cancel("never-scheduled")
    assert set(scheduler.pending()) == {"b"}
    async with running(scheduler):
        clock.now = START + 0.02
        await recorder.until(lambda fired: fired == ["b"])
        await asyncio.sleep(SETTLE)
    assert recorder.fired == ["b"]


async def test_cancel_while_running_stops_an_entry_the_loop_is_waiting_for(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    scheduler.at("a", START + 0.02, recorder.callback("a"))
    scheduler.at("b", START + 0.03, recorder.callback("b"))
    async with running(scheduler):
        await asyncio.sleep(0.005)
        scheduler.cancel("a")
        clock.now = START + 1
        await recorder.until(lambda fired: fired == ["b"])
        await asyncio.sleep(SETTLE)
    assert recorder.fired == ["b"]


async def test_cancel_prefix_cancels_every_deadline_of_one_object(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    one = ("Workshop", "ns", "one")
    keep: list[Hashable] = [("Workshop", "ns", "two", "expiry"), ("Workshop", "ns", "onex", "expiry"), "plain-key"]
    cancel: list[Hashable] = [(*one, "expiry"), (*one, "expiry-warning"), one]
    for key in [*keep, *cancel]:
        scheduler.at(key, START + 0.01, recorder.callback(key))

    scheduler.cancel_prefix(one)

    assert set(scheduler.pending()) == set(keep)
    async with running(scheduler):
        clock.now = START + 0.02
        await recorder.until(lambda fired: len(fired) == len(keep))
        await asyncio.sleep(SETTLE)
    assert sorted(map(str, recorder.fired)) == sorted(map(str, keep))


async def test_a_failing_callback_does_not_stop_later_ones(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("the API server said no")

    scheduler.at("broken", START + 0.01, broken)
    scheduler.at("same-time", START + 0.01, recorder.callback("same-time"))
    scheduler.at("later", START + 0.02, recorder.callback("later"))
    with caplog.at_level(logging.ERROR, logger=schedule.__name__):
        async with running(scheduler) as task:
            clock.now = START + 0.03
            await recorder.until(lambda fired: fired == ["same-time", "later"])

            scheduler.at("after", START + 0.04, recorder.callback("after"))
            clock.now = START + 0.05
            await recorder.until(lambda fired: fired == ["same-time", "later", "after"])
            assert not task.done()
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "'broken'" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], RuntimeError)


async def test_an_entry_already_due_fires_immediately(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    async with running(scheduler):
        await asyncio.sleep(0.005)  # idle: nothing scheduled, the loop waits without a timeout
        started = time.monotonic()
        scheduler.at("overdue", START - 500, recorder.callback("overdue"))
        await recorder.until(lambda fired: fired == ["overdue"], within=1.0)
        assert time.monotonic() - started < 0.5


async def test_an_entry_already_due_jumps_ahead_of_a_far_one(
    scheduler: schedule.Scheduler, clock: Clock, recorder: Recorder
) -> None:
    scheduler.at("far", START + 3600, recorder.callback("far"))
    async with running(scheduler):
        await asyncio.sleep(0.005)  # the loop now sleeps for an hour
        scheduler.at("overdue", START - 1, recorder.callback("overdue"))
        await recorder.until(lambda fired: fired == ["overdue"], within=1.0)
    assert set(scheduler.pending()) == {"far"}


async def test_ten_thousand_pending_keys_cost_one_task(scheduler: schedule.Scheduler, clock: Clock) -> None:
    async def never() -> None:
        raise AssertionError("nothing here is due")

    before = asyncio.all_tasks()
    async with running(scheduler) as task:
        for i in range(10_000):
            scheduler.at(("Workshop", "ns", f"ws-{i}", "expiry"), START + 3600 + i, never)
        for _ in range(3):
            await asyncio.sleep(0.005)
        extra = asyncio.all_tasks() - before
        assert task in extra
        # the loop, plus at most the waiter asyncio.wait_for wraps its wait in on Python 3.11
        assert len(extra) <= 2
        assert len(scheduler) == 10_000


def test_get_returns_one_shared_scheduler() -> None:
    assert schedule.get() is schedule.get()
