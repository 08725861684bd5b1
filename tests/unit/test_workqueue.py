"""The work queue's promises: one pending reconcile per object however many events arrive, never
two reconciles of one object at once, a bounded number of workers, per-object exponential retry,
waits that back off, and nothing left behind for an object that is gone."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Hashable

import pytest

from roadie.core import schedule, workqueue


@pytest.fixture
async def scheduler() -> AsyncIterator[schedule.Scheduler]:
    schedule.reset()
    sched = schedule.get()
    sched.start()
    yield sched
    await sched.stop()
    schedule.reset()


async def _until(check: object, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_burst_of_events_costs_one_reconcile(scheduler: schedule.Scheduler) -> None:
    runs: list[Hashable] = []
    gate = asyncio.Event()

    async def handle(key: Hashable) -> float | None:
        runs.append(key)
        await gate.wait()
        return None

    queue = workqueue.WorkQueue("Thing", handle, workers=2)
    for _ in range(50):
        queue.add("a")
    queue.start()
    await _until(lambda: runs == ["a"])
    gate.set()
    await asyncio.sleep(0.05)
    await queue.stop()
    assert runs == ["a"]


async def test_an_event_during_a_reconcile_runs_it_once_more_afterwards(scheduler: schedule.Scheduler) -> None:
    running = 0
    most = 0
    runs = 0
    release = asyncio.Event()

    async def handle(key: Hashable) -> float | None:
        nonlocal running, most, runs
        running += 1
        most = max(most, running)
        runs += 1
        if runs == 1:
            await release.wait()
        running -= 1
        return None

    queue = workqueue.WorkQueue("Thing", handle, workers=4)
    queue.start()
    queue.add("a")
    await _until(lambda: runs == 1)
    for _ in range(10):
        queue.add("a")  # arrives while "a" is being reconciled
    release.set()
    await _until(lambda: runs == 2)
    await asyncio.sleep(0.05)
    await queue.stop()
    assert runs == 2 and most == 1


async def test_workers_are_bounded(scheduler: schedule.Scheduler) -> None:
    running = 0
    most = 0
    done = 0

    async def handle(key: Hashable) -> float | None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        done += 1
        return None

    queue = workqueue.WorkQueue("Thing", handle, workers=3)
    queue.start()
    for i in range(30):
        queue.add(i)
    await _until(lambda: done == 30)
    await queue.stop()
    assert most == 3


async def test_failures_retry_with_growing_delays_then_forget(scheduler: schedule.Scheduler) -> None:
    moments: list[float] = []
    loop = asyncio.get_running_loop()

    async def handle(key: Hashable) -> float | None:
        moments.append(loop.time())
        if len(moments) < 4:
            raise RuntimeError("API server said 500")
        return None

    queue = workqueue.WorkQueue("Thing", handle, workers=1, base_delay=0.02)
    queue.start()
    queue.add("a")
    await _until(lambda: len(moments) == 4)
    await queue.stop()
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert gaps[0] >= 0.015 and gaps[1] >= 0.035 and gaps[2] >= 0.075, gaps
    assert queue.tracked() == 0, "a success forgets the failure count"


async def test_a_waiting_object_comes_back_with_a_capped_backoff(scheduler: schedule.Scheduler) -> None:
    moments: list[float] = []
    loop = asyncio.get_running_loop()

    async def handle(key: Hashable) -> float | None:
        moments.append(loop.time())
        return workqueue.WAIT

    queue = workqueue.WorkQueue("Thing", handle, workers=1, wait_base=0.02, wait_max=0.05)
    queue.start()
    queue.add("a")
    await _until(lambda: len(moments) == 5)
    await queue.stop()
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert gaps[0] >= 0.015 and gaps[1] >= 0.035
    assert all(gap < 0.2 for gap in gaps), "capped"


async def test_forgetting_an_object_drops_its_retries(scheduler: schedule.Scheduler) -> None:
    async def handle(key: Hashable) -> float | None:
        raise RuntimeError("gone soon")

    queue = workqueue.WorkQueue("Thing", handle, workers=1, base_delay=10)
    queue.start()
    queue.add("a")
    await _until(lambda: queue.tracked() == 1)
    assert len(scheduler) == 1
    queue.forget("a")
    await queue.stop()
    assert queue.tracked() == 0 and len(scheduler) == 0


async def test_a_deadline_due_runs_at_once_beside_busy_workers_never_beside_its_own_reconcile(
    scheduler: schedule.Scheduler,
) -> None:
    gate = asyncio.Event()
    ran: list[Hashable] = []
    at_once: dict[Hashable, int] = {}
    most: dict[Hashable, int] = {}

    async def handle(key: Hashable) -> float | None:
        at_once[key] = at_once.get(key, 0) + 1
        most[key] = max(most.get(key, 0), at_once[key])
        ran.append(key)
        if isinstance(key, str) and key.startswith("busy"):
            await gate.wait()
        at_once[key] -= 1
        return None

    queue = workqueue.WorkQueue("Thing", handle, workers=2)
    queue.start()
    queue.add("busy-1")
    queue.add("busy-2")
    await _until(lambda: len(ran) == 2)
    for i in range(100):
        queue.add_now(f"due-{i}")  # both workers are busy: these do not wait for them
    await _until(lambda: len(ran) == 102)
    queue.add_now("busy-1")  # its reconcile is running: it runs once more afterwards, not beside it
    await asyncio.sleep(0.02)
    assert ran.count("busy-1") == 1
    gate.set()
    await _until(lambda: ran.count("busy-1") == 2)
    await queue.stop()
    assert max(most.values()) == 1


async def test_an_object_reconciled_before_goes_ahead_of_a_batch_never_reconciled(
    scheduler: schedule.Scheduler,
) -> None:
    order: list[Hashable] = []

    async def handle(key: Hashable) -> float | None:
        order.append(key)
        return None

    queue = workqueue.WorkQueue("t", handle, workers=1)
    queue.add("old")
    queue.start()
    await _until(lambda: order == ["old"])
    await queue.stop()
    for i in range(5):  # a batch arrives; then the old object's child changes
        queue.add(f"new-{i}")
    queue.add("old")
    queue.start()
    await _until(lambda: len(order) == 7)
    await queue.stop()
    assert order[1] == "old", f"the known object waited behind the batch: {order}"
    assert order[2:] == [f"new-{i}" for i in range(5)], "the batch keeps its own order"
    queue.forget("new-0")
    queue.add("new-0")
    queue.add("new-1")
    assert [list(lane) for lane in queue._queue._lanes] == [["new-1"], ["new-0"]], "a forgotten object starts over"
