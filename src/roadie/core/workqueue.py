"""A work queue in the spirit of client-go's: a bounded number of workers, one pending reconcile
per object however many events arrive, and per-object exponential retry.

Events only mark an object dirty; a worker takes the key and reconciles the object as the cache
holds it then, so ten events in a burst cost one reconcile, not ten. A key being reconciled that
is marked again is run once more afterwards, never twice at once. Delayed adds (retries, waits,
resyncs) are entries in the core scheduler, so a retry is exact and costs no task while it waits.
A deadline falling due (`add_now`) does not queue behind the workers: its reconcile starts at once
beside them, a bounded number at a time, since four hundred expiries due in the same second would
otherwise wait for one another in rounds of sixteen.

Two lanes, as controller-runtime's priority queue has: a key reconciled before (since the operator
started) goes ahead of one never reconciled. When a thousand objects arrive at once (a batch, or
a restart's initial list), the wake-up of one whose Deployment became available, the step that
makes it Ready, no longer waits behind the first reconcile of all the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from roadie.core import background, metrics, schedule

log = logging.getLogger(__name__)

#: What a reconcile returns: seconds until it wants to run again, None for "only on a change",
#: or WAIT: it is waiting on something whose events will wake it; come back with a growing backoff.
WAIT = -1.0
#: Reconciles of deadlines fallen due that run at once beside the workers.
URGENT = 64
Handler = Callable[[Hashable], Awaitable[float | None]]


class Lanes:
    """Two FIFO lanes of keys; `get` takes from the first while it has any."""

    def __init__(self) -> None:
        self._lanes: tuple[collections.deque[Hashable], collections.deque[Hashable]] = (
            collections.deque(),
            collections.deque(),
        )
        self._items = asyncio.Semaphore(0)

    def put_nowait(self, key: Hashable, *, first: bool = False) -> None:
        self._lanes[0 if first else 1].append(key)
        self._items.release()

    async def get(self) -> Hashable:
        await self._items.acquire()
        return (self._lanes[0] or self._lanes[1]).popleft()

    def qsize(self) -> int:
        return len(self._lanes[0]) + len(self._lanes[1])


class WorkQueue:
    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        workers: int = 16,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        wait_base: float = 1.0,
        wait_max: float = 60.0,
    ) -> None:
        self.name = name
        self._handler = handler
        self._workers = workers
        self._base, self._max = base_delay, max_delay
        self._wait_base, self._wait_max = wait_base, wait_max
        self._queue = Lanes()
        self._known: set[Hashable] = set()  # reconciled at least once: the first lane
        self._dirty: dict[Hashable, float] = {}  # key -> when it was queued
        self._processing: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._waits: dict[Hashable, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._urgent: set[asyncio.Task[None]] = set()
        self._urgent_slots: asyncio.Semaphore | None = None

    # -- adding ------------------------------------------------------------------------------
    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty[key] = time.monotonic()
        if key not in self._processing:
            self._queue.put_nowait(key, first=key in self._known)
        metrics.QUEUE_DEPTH.labels(self.name).set(self._queue.qsize())

    def add_now(self, key: Hashable) -> None:
        """A deadline of the object fell due: reconcile it at once, beside the workers (never
        beside another reconcile of the same object: one running or queued takes this add)."""
        if key in self._processing or key in self._dirty or not self._tasks:
            self.add(key)
            return
        self._processing.add(key)
        task = asyncio.get_running_loop().create_task(self._run_urgent(key))
        self._urgent.add(task)
        task.add_done_callback(self._urgent.discard)

    async def _run_urgent(self, key: Hashable) -> None:
        if self._urgent_slots is None:
            self._urgent_slots = asyncio.Semaphore(URGENT)
        try:
            with background.urgent():  # counted while waiting for a slot too
                async with self._urgent_slots:
                    await self._run(key)
        finally:
            self._release(key)

    def add_after(self, key: Hashable, delay: float, purpose: str = "requeue") -> None:
        """Queue `key` after `delay` seconds; an earlier pending add of the same purpose wins."""
        if delay <= 0:
            self.add(key)
            return
        sched = schedule.get()
        sched.at((self.name, key, purpose), time.time() + delay, lambda: self.add(key), earliest=True)

    def retry(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(self._max, self._base * 2 ** min(failures - 1, 20))
        metrics.QUEUE_RETRIES.labels(self.name).inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        """The object is gone: drop its retries, waits and deadlines (nothing may leak)."""
        self._failures.pop(key, None)
        self._waits.pop(key, None)
        self._known.discard(key)
        schedule.get().cancel_prefix((self.name, key))

    def __len__(self) -> int:
        return self._queue.qsize()

    def tracked(self) -> int:
        """Per-object state held (failures and waits); zero once every object is settled."""
        return len(self._failures) + len(self._waits)

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"{self.name}-worker-{i}") for i in range(self._workers)]

    @property
    def healthy(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._urgent]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            queued_at = self._dirty.pop(key, time.monotonic())
            metrics.QUEUE_WAIT_SECONDS.labels(self.name).observe(time.monotonic() - queued_at)
            metrics.QUEUE_DEPTH.labels(self.name).set(self._queue.qsize())
            self._processing.add(key)
            try:
                await self._run(key)
            finally:
                self._release(key)

    def _release(self, key: Hashable) -> None:
        """A reconcile of `key` ended: one asked for meanwhile is queued now."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key, first=True)

    async def _run(self, key: Hashable) -> None:
        self._known.add(key)
        try:
            again = await self._handler(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = self.retry(key)
            log.debug("reconcile of %s %r failed; retry in %.1fs", self.name, key, delay)
            return
        self._failures.pop(key, None)
        if again == WAIT:
            waits = self._waits.get(key, 0) + 1
            self._waits[key] = waits
            self.add_after(key, min(self._wait_max, self._wait_base * 2 ** min(waits - 1, 20)))
            return
        self._waits.pop(key, None)
        if again is not None:
            self.add_after(key, again)
