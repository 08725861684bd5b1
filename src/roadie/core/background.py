"""Work that follows a step the user is waiting for, done after it and a few at a time: the
events of a reconcile, the status of an object already being deleted.

Four hundred expiries due in one second each send a delete, a status write and an event; the
client's rate limit (200 a second, 400 at once) is shared by all three, so sent in sequence the
last deletes waited seconds for tokens the status writes had taken. Done here, what follows each
delete waits until the deletes have gone out: while deadline reconciles run (`urgent()`, held by
the work queue's deadline lane), background work does not start, for at most `HOLD` seconds, so
a lane that never empties cannot starve it. The operator's one event loop is the resource shared:
in a profile of 400 expiries it was busy throughout, and every status write and event sent beside
the deletes pushed the last deletes later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

log = logging.getLogger(__name__)
#: Background work in flight at once.
SLOTS = 4
_pending: set[asyncio.Task[None]] = set()
#: The longest background work waits for deadline reconciles to finish.
HOLD = 2.0
_urgent = 0


class _LoopState:
    """What belongs to one event loop: the slots, and the event set while no deadline reconcile
    runs."""

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(SLOTS)
        self.calm = asyncio.Event()
        if _urgent == 0:
            self.calm.set()


_states: dict[asyncio.AbstractEventLoop, _LoopState] = {}


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        _states.clear()  # one operator loop at a time; a test's earlier loops are gone
        state = _states[loop] = _LoopState()
    return state


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Held while a reconcile a deadline fell due for runs: background work waits for it."""
    global _urgent
    _urgent += 1
    _state().calm.clear()
    try:
        yield
    finally:
        _urgent -= 1
        if _urgent == 0:
            _state().calm.set()


async def calm(limit: float | None = None) -> None:
    """Return once no deadline reconcile runs, or after `limit` seconds (`HOLD` by default)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_state().calm.wait(), timeout=HOLD if limit is None else limit)


def soon(work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run `work` in the background; a failure is logged, never raised."""
    loop = asyncio.get_running_loop()
    slots = _state().slots

    async def run() -> None:
        await calm()
        async with slots:
            try:
                await work()
            except Exception:
                log.warning("%s failed", what, exc_info=True)

    task = loop.create_task(run())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def drain() -> None:
    """Cancel what is still waiting (the operator is stopping)."""
    for task in list(_pending):
        task.cancel()
