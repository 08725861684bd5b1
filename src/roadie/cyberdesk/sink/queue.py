"""Writes that never block a reconcile: the latest value per key, written by one background task,
retried with capped exponential backoff.

A sink is level-based: the Cyberdesk's status is the truth and each reconcile hands the sink the
value the row should hold. `put` only records it (the newest value of a key replaces an older one
still waiting, so a row never goes back to a stale status) and returns at once; the task writes
the waiting keys in turn. A failed write is put back unless a newer value arrived meanwhile, and
the task waits before the next attempt, longer after each consecutive failure up to a cap, so a
database that is down costs one attempt per backoff period, not one per reconcile, and catches up
by itself when it returns. A value already written is not written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from roadie.cyberdesk import metrics

log = logging.getLogger(__name__)

V = TypeVar("V")

#: Results a write returns: "ok", or "missing" (nothing to update; not retried, not remembered).
OK, MISSING = "ok", "missing"


class RejectedError(Exception):
    """The sink refused this value for good (a constraint, a 4xx): retrying it cannot help."""


@dataclasses.dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (1 or more)."""
        return float(min(self.maximum, self.initial * self.factor ** max(0, failures - 1)))


class KeyedQueue(Generic[V]):
    def __init__(self, sink: str, write: Callable[[str, V], Awaitable[str]], backoff: Backoff | None = None) -> None:
        self.sink = sink
        self._write = write
        self._backoff = backoff or Backoff()
        self._pending: dict[str, V] = {}
        self._written: dict[str, V] = {}
        self._inflight: str | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    def put(self, key: str, value: V) -> None:
        """Record the value `key` should have; returns at once."""
        if key not in self._pending and key != self._inflight and self._written.get(key) == value:
            return
        self._pending[key] = value
        self._changed()

    def forget(self, key: str) -> None:
        """Drop what is remembered of `key` (its object is gone); a value still waiting is kept."""
        self._written.pop(key, None)

    @property
    def pending(self) -> int:
        return len(self._pending) + (1 if self._inflight is not None else 0)

    def _changed(self) -> None:
        metrics.SINK_PENDING.labels(self.sink).set(self.pending)
        if self.pending:
            self._idle.clear()
            self._wake.set()
        else:
            self._idle.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"cyberdesk-sink-{self.sink}")

    async def idle(self) -> None:
        """Until nothing waits to be written."""
        await self._idle.wait()

    async def close(self, grace: float = 5.0) -> None:
        """Give waiting writes `grace` seconds to land, then stop the task."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            key = next(iter(self._pending))
            value = self._pending.pop(key)
            self._inflight = key
            try:
                result = await self._write(key, value)
            except asyncio.CancelledError:
                self._pending.setdefault(key, value)
                self._inflight = None
                raise
            except RejectedError as error:
                self._inflight = None
                metrics.SINK_WRITES.labels(self.sink, "rejected").inc()
                log.error("%s refused %s=%r for good: %s", self.sink, key, value, error)
                self._changed()
                continue
            except Exception as error:
                self._inflight = None
                self._pending.setdefault(key, value)  # at the end of the turn, unless a newer one came
                self.failures += 1
                metrics.SINK_WRITES.labels(self.sink, "error").inc()
                metrics.SINK_RETRIES.labels(self.sink).inc()
                delay = self._backoff.delay(self.failures)
                level = logging.WARNING if self.failures == 1 else logging.DEBUG
                log.log(level, "%s write of %s failed (%s); retrying in %.1fs", self.sink, key, error, delay)
                self._changed()
                await asyncio.sleep(delay)
                continue
            self._inflight = None
            if self.failures:
                log.info("%s writes succeed again after %d failure(s)", self.sink, self.failures)
                self.failures = 0
            metrics.SINK_WRITES.labels(self.sink, result).inc()
            if result == OK:
                self._written[key] = value
            self._changed()


class RowSink:
    """What the row sinks (PostgreSQL, Supabase) share: the latest status per desktop, written by
    the subclass's `_write` from a KeyedQueue; events are the webhook's, not the row's."""

    name = "row"
    queue: KeyedQueue[str]

    def put(self, name: str, status: str) -> None:
        self.queue.put(name, status)

    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        """Events are the webhook's; the row only follows the status."""

    def forget(self, name: str, namespace: str | None = None) -> None:
        self.queue.forget(name)

    async def start(self) -> None:
        await self.queue.start()

    async def close(self, grace: float = 5.0) -> None:
        await self.queue.close(grace)
        await self._release()

    async def _release(self) -> None:
        """Let go of what the sink holds (a connection, an HTTP client) once the queue is done."""
