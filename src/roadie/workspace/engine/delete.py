"""Deleting a snapshot: it disappears in one rename, then its files are removed.

Snapshots share unchanged files as hard links, so there is no reference count of JVS's own to
keep right: the file system's link count is it. Removing a snapshot's names frees exactly the
inodes no other snapshot links to, and nothing else; what that frees is measured beforehand as
the blocks of the snapshot's inodes that have a single link.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from roadie.workspace.engine import layout, store

STEPS = ("delete-renamed",)


def unshared_bytes(snap: store.Snapshot) -> int:
    """Disk space only this snapshot holds (its files no other snapshot links to, its directories
    and metadata)."""
    total = 0
    for directory, subdirs, files in os.walk(snap.path):
        total += os.lstat(directory).st_blocks * 512
        for name in files + [d for d in subdirs if os.path.islink(os.path.join(directory, d))]:
            st = os.lstat(os.path.join(directory, name))
            if st.st_nlink == 1 or stat.S_ISLNK(st.st_mode):
                total += st.st_blocks * 512
    return total


def delete(lay: layout.Layout, ref: str) -> dict[str, Any]:
    snap = store.resolve(lay, ref)
    freed = unshared_bytes(snap)
    doomed = lay.trash / snap.id
    os.rename(snap.path, doomed)
    layout.fsync_dir(lay.snapshots)
    layout.crash_point("delete-renamed")
    layout.remove_tree(doomed)
    return {"snapshotID": snap.id, "freedBytes": freed, "tags": snap.tags}


def recover(lay: layout.Layout) -> list[str]:
    """Finish deletions an interrupted run started (their snapshots are already invisible)."""
    done = []
    for leftover in lay.trash.iterdir():
        layout.remove_tree(leftover)
        done.append(f"finished deleting {leftover.name}")
    return done
