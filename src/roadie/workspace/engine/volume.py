"""Every command's way into a volume: the lock, then recovery of whatever a killed run left.

Mutating commands hold the lock exclusively and start by recovering, so a snapshot, restore or
deletion interrupted at any instant is finished or undone before anything else happens; readers
(list, verify) share the lock and only ever see published snapshots.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator

from roadie.workspace.engine import delete, layout, publish, restore

LOCK_TIMEOUT = 600.0


def recover(lay: layout.Layout) -> list[str]:
    return restore.recover(lay) + publish.recover(lay) + delete.recover(lay)


@contextlib.contextmanager
def opened(
    root: pathlib.Path, *, exclusive: bool = True, timeout: float = LOCK_TIMEOUT, recovered: list[str] | None = None
) -> Iterator[layout.Layout]:
    """The volume's layout, locked; `recovered` receives what recovery did."""
    lay = layout.open_layout(root)
    with layout.locked(lay, exclusive=exclusive, timeout=timeout):
        if exclusive:
            done = recover(lay)
            if recovered is not None:
                recovered.extend(done)
        yield lay
