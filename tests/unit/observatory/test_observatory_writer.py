"""The run status writer: the first status and every phase change are written at once, anything
else at most once an interval (the run is woken when it is up), a status handed over while a
write is in flight is written after it, and what is held is the next reconcile's starting point."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

from lightkube.core.exceptions import ApiError

from roadie.observatory import writer

KEY = ("ns", "run")


class Fake:
    def __init__(self) -> None:
        self.now = 100.0
        self.written: list[dict[str, Any]] = []
        self.wakes: list[float] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def write(self, key: Hashable, new: dict[str, Any]) -> None:
        assert key == KEY
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.written.append(new)

    def wake(self, key: Hashable, delay: float) -> None:
        self.wakes.append(delay)

    def writer(self) -> writer.StatusWriter:
        return writer.StatusWriter(1.0, self.write, self.wake, clock=lambda: self.now)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def running(progress: str) -> dict[str, Any]:
    return {"phase": "Running", "progress": progress}


async def test_the_first_status_is_written_at_once_the_next_within_the_interval_is_held() -> None:
    fake = Fake()
    w = fake.writer()
    w.submit(KEY, {}, running("0/3"))
    await settle()
    assert fake.written == [running("0/3")] and not w.held
    fake.now += 0.25
    w.submit(KEY, running("0/3"), running("1/3"))
    await settle()
    assert fake.written == [running("0/3")], "held: the last write was a quarter of a second ago"
    assert fake.wakes == [0.75], "the run is woken when the interval is up"
    assert w.newest(KEY, running("0/3")) == running("1/3"), "the next reconcile starts from what is held"
    fake.now += 0.75
    w.submit(KEY, running("0/3"), running("1/3"))
    await settle()
    assert fake.written == [running("0/3"), running("1/3")] and not w.held


async def test_a_phase_change_is_written_at_once() -> None:
    fake = Fake()
    w = fake.writer()
    w.submit(KEY, {}, running("0/1"))
    await settle()
    fake.now += 0.1
    w.submit(KEY, running("0/1"), {"phase": "Succeeded", "progress": "1/1"})
    await settle()
    assert fake.written[-1] == {"phase": "Succeeded", "progress": "1/1"}
    w.submit(KEY, {"phase": "Succeeded", "progress": "1/1"}, {"phase": "Succeeded", "progress": "1/1"})
    await settle()
    assert len(fake.written) == 2, "nothing changed: nothing is written"


async def test_a_status_handed_over_during_a_write_follows_it() -> None:
    fake = Fake()
    w = fake.writer()
    fake.gate = asyncio.Event()
    w.submit(KEY, {}, running("0/2"))
    await settle()
    w.submit(KEY, {}, {"phase": "Failed"})  # the phase changed while the first write was in flight
    fake.gate.set()
    await settle()
    assert fake.written == [running("0/2"), {"phase": "Failed"}]
    fake.gate = asyncio.Event()
    fake.now += 5
    w.submit(KEY, {"phase": "Failed"}, {"phase": "Failed", "message": "a"})
    await settle()
    w.submit(KEY, {"phase": "Failed"}, {"phase": "Failed", "message": "b"})
    fake.gate.set()
    await settle()
    assert fake.written[-1] == {"phase": "Failed", "message": "a"}
    assert fake.wakes[-1] == 1.0 and w.held[KEY] == {"phase": "Failed", "message": "b"}, "the newer waits its turn"


async def test_a_failed_write_is_retried_and_a_gone_run_forgotten() -> None:
    fake = Fake()
    w = fake.writer()
    fake.fail = RuntimeError("the API server is restarting")
    w.submit(KEY, {}, running("0/1"))
    await settle()
    assert fake.wakes == [writer.RETRY] and w.held[KEY] == running("0/1")
    fake.fail = ApiError(status=type("S", (), {"code": 404, "message": "gone"})())
    fake.now += 5
    w.submit(KEY, {}, running("0/1"))
    await settle()
    assert not w.held and fake.written == []


async def test_a_status_slow_to_write_is_written_less_often() -> None:
    fake = Fake()
    w = fake.writer()
    original = fake.write

    async def slow(key: Hashable, new: dict[str, Any]) -> None:
        fake.now += 1.5  # the API server took a second and a half
        await original(key, new)

    w._write = slow
    w.submit(KEY, {}, running("0/9"))
    await settle()
    assert w.gap(KEY) == 1.5 * writer.COST_FACTOR
    fake.now += 2.0
    w.submit(KEY, running("0/9"), running("1/9"))
    await settle()
    assert len(fake.written) == 1 and fake.wakes == [1.5 * writer.COST_FACTOR - 2.0]
