"""Work that follows a step the user is waiting for, done after it and a few at a time: the
events of a reconcile, the status of an object already being deleted.

Four hundred expiries due in one second each send a delete, a status write and an event; the
client's rate limit (200 a second, 400 at once) is shared by all three, so sent in sequence the
last deletes waited seconds for tokens the status writes had taken. Done here, what follows each
delete waits until the deletes have gone out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)
#: Background work in flight at once.
SLOTS = 4
_pending: set[asyncio.Task[None]] = set()
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def soon(work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run `work` in the background; a failure is logged, never raised."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        _slots.clear()  # one operator loop at a time; a test's earlier loops are gone
        slots = _slots[loop] = asyncio.Semaphore(SLOTS)

    async def run() -> None:
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
