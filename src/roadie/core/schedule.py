"""One scheduler for every deadline in the operator: expiry, warnings, provisioning deadlines.

A heap of (when, key) and a single task that sleeps until the earliest entry, so an object expires
at its exact `expiresAt`, not at the next poll, and ten thousand pending deadlines cost ten
thousand heap entries, not ten thousand tasks. Rescheduling a key replaces its entry (stale heap
entries are skipped when they surface). Nothing is persisted here: deadlines live in each
object's `status`, and the reconcile that runs for every object at startup schedules them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable

Callback = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)


@dataclasses.dataclass(order=True)
class _Entry:
    when: float
    seq: int
    key: Hashable = dataclasses.field(compare=False)
    callback: Callback = dataclasses.field(compare=False)


class Scheduler:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._heap: list[_Entry] = []
        self._live: dict[Hashable, _Entry] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    def _now(self) -> float:
        return self._clock() if self._clock else datetime.datetime.now(datetime.UTC).timestamp()

    def at(self, key: Hashable, when: datetime.datetime | float, callback: Callback) -> None:
        """Run `callback` at `when` (a UTC datetime or epoch seconds), replacing `key`'s entry."""
        moment = when.timestamp() if isinstance(when, datetime.datetime) else float(when)
        current = self._live.get(key)
        if current is not None and current.when == moment:
            current.callback = callback
            return
        entry = _Entry(moment, next(self._seq), key, callback)
        self._live[key] = entry
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wakeup.set()

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def cancel_prefix(self, prefix: tuple[Hashable, ...]) -> None:
        """Cancel every key that is a tuple starting with `prefix` (all deadlines of one object)."""
        for key in [k for k in self._live if isinstance(k, tuple) and k[: len(prefix)] == prefix]:
            del self._live[key]

    def pending(self) -> dict[Hashable, float]:
        return {key: entry.when for key, entry in self._live.items()}

    def __len__(self) -> int:
        return len(self._live)

    async def run(self) -> None:
        """Fire entries as they come due; runs until cancelled."""
        while True:
            while self._heap and self._live.get(self._heap[0].key) is not self._heap[0]:
                heapq.heappop(self._heap)  # replaced or cancelled
            delay = (self._heap[0].when - self._now()) if self._heap else None
            if delay is not None and delay <= 0:
                entry = heapq.heappop(self._heap)
                del self._live[entry.key]
                task = asyncio.create_task(self._fire(entry))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)

    async def _fire(self, entry: _Entry) -> None:
        try:
            await entry.callback()
        except Exception:
            log.exception("scheduled action %r failed", entry.key)


_scheduler: Scheduler | None = None


def get() -> Scheduler:
    global _scheduler
    if _scheduler is None:
        _scheduler = Scheduler()
    return _scheduler
