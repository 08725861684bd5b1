"""The sinks' write queue on its own, with a write function the test controls: `put` never waits,
the latest value of a key wins, a value already written is not written again, failures are
retried with growing, capped delays and counted, and a value refused for good is not retried."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.support.receiver import eventually

from roadie.core import metrics
from roadie.cyberdesk.sink import queue

FAST = queue.Backoff(initial=0.01, maximum=0.05)


def _metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class Target:
    """A write function that records what it wrote, and can fail or block on demand."""

    def __init__(self) -> None:
        self.written: list[tuple[str, str]] = []
        self.fail = 0
        self.reject: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls = 0

    async def write(self, key: str, value: str) -> str:
        self.calls += 1
        await self.gate.wait()
        if value in self.reject:
            raise queue.RejectedError(f"no {value}")
        if self.fail:
            self.fail -= 1
            raise ConnectionError("down")
        self.written.append((key, value))
        return queue.OK


def test_backoff_grows_and_is_capped() -> None:
    backoff = queue.Backoff(initial=0.5, maximum=4.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_latest_value_wins_and_a_written_value_is_not_written_again() -> None:
    target = Target()
    q: queue.KeyedQueue[str] = queue.KeyedQueue("test-latest", target.write, FAST)
    for value in ("pending", "running", "completed"):
        q.put("a", value)
    q.put("b", "pending")
    await q.start()
    await asyncio.wait_for(q.idle(), 5)
    assert target.written == [("a", "completed"), ("b", "pending")]
    q.put("a", "completed")
    assert q.pending == 0
    q.forget("a")
    q.put("a", "completed")
    await asyncio.wait_for(q.idle(), 5)
    assert target.written[-1] == ("a", "completed") and len(target.written) == 3
    await q.close()


async def test_put_never_waits_for_a_slow_write() -> None:
    target = Target()
    target.gate.clear()
    q: queue.KeyedQueue[str] = queue.KeyedQueue("test-slow", target.write, FAST)
    await q.start()
    q.put("a", "pending")
    await eventually(lambda: target.calls == 1)  # its write has begun, and waits
    started = time.monotonic()
    for i in range(1000):
        q.put(f"k{i}", "running")
    assert time.monotonic() - started < 0.5
    assert q.pending == 1001 and _metric("roadie_cyberdesk_sink_pending", sink="test-slow") == 1001
    q.put("a", "running")  # a write of "pending" is in flight: the newer value must follow it
    target.gate.set()
    await asyncio.wait_for(q.idle(), 10)
    assert target.written[0] == ("a", "pending") and target.written[-1] == ("a", "running")
    assert _metric("roadie_cyberdesk_sink_pending", sink="test-slow") == 0
    await q.close()


async def test_failures_are_retried_counted_and_a_newer_value_replaces_the_failed_one() -> None:
    target = Target()
    target.fail = 3
    q: queue.KeyedQueue[str] = queue.KeyedQueue("test-retry", target.write, FAST)
    q.put("a", "pending")
    await q.start()
    await eventually(lambda: target.fail <= 1)
    q.put("a", "running")
    await asyncio.wait_for(q.idle(), 5)
    assert target.written == [("a", "running")]
    assert _metric("roadie_cyberdesk_sink_retries_total", sink="test-retry") == 3
    assert _metric("roadie_cyberdesk_sink_writes_total", sink="test-retry", result="error") == 3
    assert _metric("roadie_cyberdesk_sink_writes_total", sink="test-retry", result="ok") == 1
    assert q.failures == 0
    await q.close()


async def test_a_refused_value_is_not_retried_and_does_not_hold_up_others() -> None:
    target = Target()
    target.reject = {"bogus"}
    q: queue.KeyedQueue[str] = queue.KeyedQueue("test-reject", target.write, FAST)
    q.put("a", "bogus")
    q.put("b", "running")
    await q.start()
    await asyncio.wait_for(q.idle(), 5)
    assert target.written == [("b", "running")]
    assert _metric("roadie_cyberdesk_sink_writes_total", sink="test-reject", result="rejected") == 1
    assert _metric("roadie_cyberdesk_sink_retries_total", sink="test-reject") == 0
    await q.close()


async def test_close_waits_a_grace_period_for_waiting_writes() -> None:
    target = Target()
    target.gate.clear()
    q: queue.KeyedQueue[str] = queue.KeyedQueue("test-close", target.write, FAST)
    await q.start()
    q.put("a", "completed")
    started = time.monotonic()
    await q.close(grace=0.2)
    assert 0.15 < time.monotonic() - started < 2
    assert target.written == []


@pytest.mark.parametrize("grace", [0.0, 1.0])
async def test_close_returns_at_once_when_nothing_waits(grace: float) -> None:
    target = Target()
    q: queue.KeyedQueue[str] = queue.KeyedQueue("test-close-idle", target.write, FAST)
    await q.start()
    started = time.monotonic()
    await q.close(grace=grace)
    assert time.monotonic() - started < 0.5
