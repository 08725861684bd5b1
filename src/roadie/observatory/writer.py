"""A run's status, written beside its reconciles rather than inside them, and at most once an
interval while its phase stays the same. A 1,000-task run's status is over 100 KB, and the API
server takes a second or more to write it on two busy cores (it decodes, validates and tracks the
managed fields of the whole object, then writes it to etcd): a reconcile that waited for that
write held up every pod start behind it, and a write per finished pod would mean one such write
per pod. So a reconcile hands its newest status over and goes on deciding; one writer per run
sends the newest status held, a phase change at once, anything else once `interval` has passed
since the last write, or eight times as long as the last write took if that is longer (the run is
woken then, exactly, by the core scheduler). What is held is the next reconcile's starting point,
so nothing is announced twice; a restarted operator starts from the stored status and the pods,
which is all a decision needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from lightkube.core.exceptions import ApiError

from roadie.core import status as core_status

log = logging.getLogger(__name__)
Status = dict[str, Any]
#: Seconds to wait before writing again after a write failed.
RETRY = 1.0
#: The gap between two writes is at least this many times the last write's duration: a status the
#: API server takes 0.8 s to write is written every 6.4 s, not every 1 s. Measured on the local
#: control plane, a status patch of a 1,000-task run costs the API server 0.74 s of CPU (more than
#: its 0.5 s of wall time: the server works on it on both cores), and each watcher of the run then
#: receives the whole object (about 0.09 s of CPU each); at three times, as before, the writes of
#: one run took about half a core from the pods it was starting, and a 1,000-task `wide` run took
#: 1.2 to 1.3 times the baseline's time, at eight 1.1 (docs/observatory.md, Benchmark). A phase
#: change is written at once whatever the factor.
COST_FACTOR = 8.0


class NotYet(Exception):  # noqa: N818  (a wait, not an error)
    """Raised by a write that must wait (the pods a status records are still being created): the
    status stays held and is written after `RETRY` seconds."""


class StatusWriter:
    def __init__(
        self,
        interval: float,
        write: Callable[[Hashable, Status], Awaitable[None]],
        wake: Callable[[Hashable, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._write, self._wake, self._clock = write, wake, clock
        self.held: dict[Hashable, Status] = {}
        self.written: dict[Hashable, float] = {}
        self.cost: dict[Hashable, float] = {}
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def newest(self, key: Hashable, stored: Status) -> Status:
        """The status a reconcile starts from: the newest computed, written or not."""
        return self.held.get(key, stored)

    def submit(self, key: Hashable, stored: Status, new: Status) -> None:
        """Hand over the status a reconcile computed; `stored` is what the object holds now."""
        if key not in self.held and not core_status.changed(stored, new):
            return
        self.held[key] = new
        last = self.written.get(key)
        now = self._clock()
        gap = self.gap(key)
        if new.get("phase") != stored.get("phase") or last is None or now - last >= gap:
            self._start(key)
        else:
            self._wake(key, last + gap - now)

    def gap(self, key: Hashable) -> float:
        """Seconds between two writes of the same phase: the interval, or longer for a status that
        is slow to write."""
        return max(self.interval, COST_FACTOR * self.cost.get(key, 0.0))

    def forget(self, key: Hashable) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        self.held.pop(key, None)
        self.written.pop(key, None)
        self.cost.pop(key, None)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()

    def _start(self, key: Hashable) -> None:
        if key in self._tasks:  # the writer in flight sends the newest held status when it is done
            return
        self._tasks[key] = asyncio.get_running_loop().create_task(self._flush(key))

    async def _flush(self, key: Hashable) -> None:
        try:
            while (new := self.held.get(key)) is not None:
                began = self._clock()
                try:
                    await self._write(key, new)
                except ApiError as error:
                    if error.status.code == 404:  # the run is gone
                        self.held.pop(key, None)
                        return
                    raise
                self.written[key] = self._clock()
                self.cost[key] = self.written[key] - began
                newer = self.held.get(key)
                if newer is new:
                    del self.held[key]
                    return
                if newer is not None and newer.get("phase") == new.get("phase"):
                    self._wake(key, self.gap(key))
                    return
        except asyncio.CancelledError:
            raise
        except NotYet as why:
            log.debug("status write of %s waits: %s", key, why)
            self._wake(key, RETRY)
        except Exception:
            log.warning("status write of %s failed; retrying in %.0fs", key, RETRY, exc_info=True)
            self._wake(key, RETRY)
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
