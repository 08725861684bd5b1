"""Putting a payload into a snapshot: the copying engines' walk, with unchanged files hard-linked
to the parent's copy and the rest copied and hashed by workers, and the juicefs-clone path.

The walk hands each directory's files to the workers as soon as it has read the directory, so
walking, copying and hashing overlap. A file whose size, mode, mtime, inode number and ctime all
match the parent's manifest entry is linked from the walking thread itself (one system call,
less than handing it over); one whose size, mode and mtime match but inode or ctime do not (a
restore rewrote it, say) is read and hashed by a worker, then linked if its hash matches.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
import stat
import threading
from collections.abc import Sequence
from typing import Any

from roadie.workspace.engine import copying, errors, layout, tree


@dataclasses.dataclass
class _Job:
    path: str
    name: str
    st: os.stat_result
    parent: tree.Entry | None


@dataclasses.dataclass
class _Batch:
    """Files of one directory: their directories are opened once, and each file is reached by
    name from there (a link or open without walking the whole path again)."""

    directory: str
    jobs: list[_Job]


def _open_dir(path: pathlib.Path | str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


class Run:
    """One snapshot being written: where from, where to, what it may link to."""

    def __init__(self, source: pathlib.Path, payload: pathlib.Path, how: copying.Plan) -> None:
        self.source, self.payload, self.how = source, payload, how
        self.parent_payload: pathlib.Path | None = None
        self.parent_entries: dict[str, tree.Entry] = {}
        self.linked = 0  # files hard-linked to the parent, and the bytes that saved
        self.linked_bytes = 0
        self.lock = threading.Lock()
        self.batches_done = 0

    def unchanged(self, path: str, st: os.stat_result) -> tree.Entry | None:
        """The parent's entry when size, mode and mtime match (the content check comes later)."""
        old = self.parent_entries.get(path)
        if old is None or old.kind != tree.FILE or old.codec != self.how.codec:
            return None
        if (old.size, old.mtime_ns, old.mode) != (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)):
            return None
        return old

    def file(self, job: _Job, fds: copying.Dirs) -> tuple[tree.Entry | None, bool]:
        st = job.st
        entry = tree.Entry(job.path, tree.FILE, stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, uid=st.st_uid,
                           gid=st.st_gid, codec=self.how.codec, ino=st.st_ino, ctime_ns=st.st_ctime_ns)  # fmt: skip
        try:
            old = job.parent
            if old is not None and fds.parent is not None:
                same = old.ino != 0 and (old.ino, old.ctime_ns) == (st.st_ino, st.st_ctime_ns)
                if not same:
                    same = copying.hash_at(fds.source, job.name) == (old.digest, old.size)
                if same and copying.link_at(fds, job.name):
                    entry.digest, entry.stored = old.digest, old.stored
                    return entry, True
            put = copying.store(fds, job.name, self.how, st)
        except FileNotFoundError:  # deleted since the walk: not part of this snapshot
            return None, False
        except PermissionError as error:
            raise errors.EngineError(f"cannot read {job.path!r} in the payload: {error.strerror}") from error
        entry.digest, entry.size, entry.stored = put.digest, put.size, put.stored
        if not put.stable:
            entry.ino = entry.ctime_ns = 0
        return entry, False

    def batch(self, batch: _Batch) -> tuple[list[tree.Entry], int, int]:
        """A batch's entries, and how many of them (and how many bytes) were hard-linked."""
        entries: list[tree.Entry] = []
        linked = linked_bytes = 0
        try:
            source = _open_dir(self.source / batch.directory)
        except FileNotFoundError:  # the directory went away after the walk
            return entries, 0, 0
        parent = None
        if self.parent_payload is not None and any(job.parent for job in batch.jobs):
            try:
                parent = _open_dir(self.parent_payload / batch.directory)
            except FileNotFoundError:
                parent = None
        fds = copying.Dirs(source, _open_dir(self.payload / batch.directory), parent)
        try:
            for job in batch.jobs:
                entry, was_linked = self.file(job, fds)
                if entry is not None:
                    entries.append(entry)
                    linked += was_linked
                    linked_bytes += entry.stored if was_linked else 0
        finally:
            fds.close()
        with self.lock:
            self.batches_done += 1
            if self.batches_done == 1:
                layout.crash_point("payload-partial")
        return entries, linked, linked_bytes


def new_entry(path: str, st: os.stat_result, kind: str, size: int = 0, **extra: Any) -> tree.Entry:
    return tree.Entry(path, kind, stat.S_IMODE(st.st_mode), size, st.st_mtime_ns, uid=st.st_uid, gid=st.st_gid, **extra)


class Linker:
    """Hard-links unchanged files from the walking thread itself: a link is one system call, less
    than handing it to a worker would cost. Keeps the current directory's descriptors open."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.directory: str | None = None
        self.fds: copying.Dirs | None = None
        self.linked = self.linked_bytes = 0

    def __enter__(self) -> Linker:
        return self

    def __exit__(self, *_: object) -> None:
        if self.fds is not None:
            self.fds.close()

    def _enter(self, directory: str) -> copying.Dirs | None:
        if directory != self.directory:
            if self.fds is not None:
                self.fds.close()
                layout.crash_point("payload-partial")  # one directory linked, others not yet
            self.fds, self.directory = None, directory
            assert self.run.parent_payload is not None
            try:
                parent = _open_dir(f"{self.run.parent_payload}/{directory}")
            except FileNotFoundError:
                return None
            self.fds = copying.Dirs(-1, _open_dir(f"{self.run.payload}/{directory}"), parent)
        return self.fds

    def link(self, directory: str, name: str, path: str, st: os.stat_result, old: tree.Entry) -> tree.Entry | None:
        fds = self._enter(directory)
        if fds is None or not copying.link_at(fds, name):
            return None
        self.linked += 1
        self.linked_bytes += old.stored
        return tree.Entry(path, tree.FILE, old.mode, old.size, old.mtime_ns, old.digest, st.st_uid, st.st_gid, "",
                          old.codec, old.stored, st.st_ino, st.st_ctime_ns)  # fmt: skip


BATCH = 32  # files per task: enough to keep the pool's overhead small, few enough to spread the work


def copy_tree(run: Run, partial: Sequence[str] | None, workers: int) -> tuple[list[tree.Entry], tree.Scan]:
    """Walk the source and hand each directory's files to the workers as soon as they are seen,
    so that the walk, the copying and the hashing overlap."""
    scan = tree.Scan()
    entries: list[tree.Entry] = []
    futures: list[concurrent.futures.Future[tuple[list[tree.Entry], int, int]]] = []
    pending = _Batch("", [])
    linker = Linker(run)
    source, payload = f"{run.source}/", f"{run.payload}/"  # strings: a Path per entry costs more than the mkdir
    with linker, concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for path, st in tree.iterate(run.source, partial, scan.skipped):
            kind = tree.kind_of(st.st_mode)
            if kind == tree.DIR:
                os.mkdir(payload + path, 0o755)
                entries.append(new_entry(path, st, tree.DIR))
            elif kind == tree.LINK:
                try:
                    target = os.readlink(source + path)
                except FileNotFoundError:
                    continue
                os.symlink(target, payload + path)
                size = len(os.fsencode(target))
                entries.append(new_entry(path, st, tree.LINK, size=size, digest=tree.hash_link(target), target=target))
            else:
                directory, _, name = path.rpartition("/")
                old = run.unchanged(path, st)
                if old is not None and old.ino and (old.ino, old.ctime_ns) == (st.st_ino, st.st_ctime_ns):
                    entry = linker.link(directory, name, path, st, old)  # the common case: no reading at all
                    if entry is not None:
                        entries.append(entry)
                        continue
                if pending.jobs and (directory != pending.directory or len(pending.jobs) >= BATCH):
                    futures.append(pool.submit(run.batch, pending))
                    pending = _Batch(directory, [])
                pending.directory = directory
                pending.jobs.append(_Job(path, name, st, old))
        if pending.jobs:
            futures.append(pool.submit(run.batch, pending))
        for future in futures:
            batch, linked, linked_bytes = future.result()
            entries.extend(batch)
            run.linked += linked
            run.linked_bytes += linked_bytes
    run.linked += linker.linked
    run.linked_bytes += linker.linked_bytes
    return entries, scan


def clone_tree(run: Run, partial: Sequence[str] | None, workers: int) -> tuple[list[tree.Entry], tree.Scan]:
    """juicefs-clone: one metadata copy of the payload, then its files hashed (or their hash
    taken from the parent when the live file provably has not changed since)."""
    if partial is None:
        copying.juicefs_clone(run.source, run.payload)
    else:
        run.payload.mkdir()
        for path in partial:
            (run.payload / path).parent.mkdir(parents=True, exist_ok=True)
            copying.juicefs_clone(run.source / path, run.payload / path)
    scan = tree.walk(run.payload, partial)
    entries: list[tree.Entry] = []
    files: list[tuple[str, os.stat_result]] = []
    for path, st in scan.items:
        kind = tree.kind_of(st.st_mode)
        if kind == tree.DIR:
            meta = st if tree.covered(path, partial) else os.lstat(run.source / path)
            entries.append(new_entry(path, meta, tree.DIR))
        elif kind == tree.LINK:
            target = os.readlink(run.payload / path)
            size = len(os.fsencode(target))
            entries.append(new_entry(path, st, tree.LINK, size=size, digest=tree.hash_link(target), target=target))
        else:
            files.append((path, st))

    def one(item: tuple[str, os.stat_result]) -> tree.Entry:
        path, st = item
        entry = new_entry(path, st, tree.FILE, size=st.st_size, stored=st.st_size)
        try:
            live: os.stat_result | None = os.lstat(run.source / path)
        except FileNotFoundError:
            live = None
        if live is not None and (live.st_size, live.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            entry.ino, entry.ctime_ns = live.st_ino, live.st_ctime_ns
        old = run.unchanged(path, st)
        if old is not None and old.ino and (old.ino, old.ctime_ns) == (entry.ino, entry.ctime_ns):
            entry.digest = old.digest
        else:
            entry.digest, entry.size = tree.hash_file(run.payload / path)
        return entry

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        entries.extend(pool.map(one, files, chunksize=32))
    layout.crash_point("payload-partial")
    return entries, scan
