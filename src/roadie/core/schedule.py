"""One scheduler for every deadline in the operator: expiry, warnings, timeouts, cron ticks,
resyncs and retries.

A heap of (when, key) and a single task that sleeps until the earliest entry, so an object expires
at its exact `expiresAt`, not at the next poll, and ten thousand pending deadlines cost ten
thousand heap entries, not ten thousand tasks. Rescheduling a key replaces its entry; replaced and
cancelled entries are skipped when they surface, and the heap is rebuilt once they outnumber the
live ones, so churn does not grow it. Keys are tuples whose last element is the purpose; the
entries of one owner (all but the last element) are indexed, so forgetting an object is as cheap
as the number of its deadlines. Due callbacks run with bounded concurrency. Nothing is persisted
here: deadlines live in each object's `status`, and the reconcile that runs for every object at
startup schedules them again.
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

from roadie.core import metrics

Callback = Callable[[], Awaitable[None] | None]
log = logging.getLogger(__name__)
MAX_RUNNING = 64


@dataclasses.dataclass(order=True)
class _Entry:
    when: float
    seq: int
    key: Hashable = dataclasses.field(compare=False)
    callback: Callback = dataclasses.field(compare=False)


def _owner(key: Hashable) -> Hashable | None:
    return key[:-1] if isinstance(key, tuple) and len(key) > 1 else None


class Scheduler:
    def __init__(self, clock: Callable[[], float] | None = None, max_running: int = MAX_RUNNING) -> None:
        self._clock = clock
        self._heap: list[_Entry] = []
        self._live: dict[Hashable, _Entry] = {}
        self._owners: dict[Hashable, set[Hashable]] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_running)
        self._task: asyncio.Task[None] | None = None

    def _now(self) -> float:
        return self._clock() if self._clock else datetime.datetime.now(datetime.UTC).timestamp()

    def at(self, key: Hashable, when: datetime.datetime | float, callback: Callback, *, earliest: bool = False) -> None:
        """Run `callback` at `when` (a UTC datetime or epoch seconds), replacing `key`'s entry;
        with `earliest`, an entry already due sooner is kept instead."""
        moment = when.timestamp() if isinstance(when, datetime.datetime) else float(when)
        current = self._live.get(key)
        if current is not None and (current.when == moment or (earliest and current.when < moment)):
            current.callback = callback
            return
        entry = _Entry(moment, next(self._seq), key, callback)
        self._live[key] = entry
        owner = _owner(key)
        if owner is not None:
            self._owners.setdefault(owner, set()).add(key)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wakeup.set()
        self._maybe_compact()

    def cancel(self, key: Hashable) -> None:
        if self._live.pop(key, None) is not None:
            self._unindex(key)
            self._maybe_compact()

    def cancel_prefix(self, prefix: tuple[Hashable, ...]) -> None:
        """Cancel every deadline of one owner (a key is `(*owner, purpose)`), and the owner's own
        key if it has one; a lookup, not a scan of every key."""
        for key in self._owners.pop(prefix, set()):
            self._live.pop(key, None)
        if self._live.pop(prefix, None) is not None:
            self._unindex(prefix)
        self._maybe_compact()

    def pending(self) -> dict[Hashable, float]:
        return {key: entry.when for key, entry in self._live.items()}

    def __len__(self) -> int:
        return len(self._live)

    def _unindex(self, key: Hashable) -> None:
        owner = _owner(key)
        if owner is not None and owner in self._owners:
            self._owners[owner].discard(key)
            if not self._owners[owner]:
                del self._owners[owner]

    def _maybe_compact(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [e for e in self._heap if self._live.get(e.key) is e]
            heapq.heapify(self._heap)

    @property
    def healthy(self) -> bool:
        return self._task is None or not self._task.done()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="roadie-scheduler")
        return self._task

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Fire entries as they come due; runs until cancelled."""
        while True:
            while self._heap and self._live.get(self._heap[0].key) is not self._heap[0]:
                heapq.heappop(self._heap)  # replaced or cancelled
            now = self._now()
            delay = (self._heap[0].when - now) if self._heap else None
            if delay is not None and delay <= 0:
                entry = heapq.heappop(self._heap)
                del self._live[entry.key]
                self._unindex(entry.key)
                metrics.DEADLINE_LATENESS.observe(now - entry.when)
                await self._slots.acquire()
                task = asyncio.create_task(self._fire(entry))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)

    async def _fire(self, entry: _Entry) -> None:
        try:
            result = entry.callback()
            if result is not None:
                await result
        except Exception:
            log.exception("scheduled action %r failed", entry.key)
        finally:
            self._slots.release()


_scheduler: Scheduler | None = None


def get() -> Scheduler:
    global _scheduler
    if _scheduler is None:
        _scheduler = Scheduler()
        metrics.DEADLINES.set_function(lambda: len(_scheduler) if _scheduler is not None else 0)
    return _scheduler


def reset() -> None:
    """A new scheduler for a new event loop (tests, and the operator's start)."""
    global _scheduler
    _scheduler = None
