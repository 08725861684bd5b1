"""Walking a payload tree, hashing its files, and the root hash and manifest of a snapshot.

The root hash is what a snapshot *is*: SHA-256 over one record per entry in byte-order of the
paths, `<type>:<mode in octal>:<size>:<content sha256>:<path>` and a NUL (the only byte a path
cannot hold, so no record can be read as two). It covers paths, modes, sizes and contents, not
times or owners, so the same files give the same hash on any volume and with any compression:
the content hash is over the file's bytes, not over what is stored.

The manifest keeps one row per entry with what restore needs (owner, mtime, symlink target, how
the bytes are stored) and what the next snapshot needs to recognise an unchanged file without
reading it (the source's inode number and ctime, beside size, mode and mtime).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import posixpath
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence

from roadie.workspace.engine import errors

BUFFER = 256 << 10  # fits a core's L2 cache: read, hashed and written while still there
FILE, DIR, LINK = "f", "d", "l"
MANIFEST_FORMAT = 1
FIELDS = ("path", "kind", "mode", "size", "mtime_ns", "digest", "uid", "gid", "target", "codec", "stored", "ino",
          "ctime_ns")  # fmt: skip
_local = threading.local()


@dataclasses.dataclass(slots=True)
class Entry:
    """One path of a snapshot. `digest` is the content's SHA-256 (a symlink's: its target's)."""

    path: str
    kind: str
    mode: int
    size: int
    mtime_ns: int
    digest: str = ""
    uid: int = 0
    gid: int = 0
    target: str = ""
    codec: str = "none"
    stored: int = 0
    ino: int = 0  # the source's inode and ctime when it was read; 0: do not trust the stat match
    ctime_ns: int = 0

    def row(self) -> list[object]:
        return [self.path, self.kind, self.mode, self.size, self.mtime_ns, self.digest, self.uid, self.gid,
                self.target, self.codec, self.stored, self.ino, self.ctime_ns]  # fmt: skip

    def record(self) -> bytes:
        head = f"{self.kind}:{self.mode:o}:{self.size}:{self.digest}:".encode()
        return head + os.fsencode(self.path) + b"\0"


def buffer() -> bytearray:
    """A reusable read buffer per thread, so copying ten thousand files allocates ten, not 10,000."""
    buf: bytearray | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = bytearray(BUFFER)
    return buf


def hash_fd(fd: int) -> tuple[str, int]:
    """SHA-256 and length of what is left to read on a descriptor."""
    digest = hashlib.sha256()
    buf = buffer()
    view = memoryview(buf)
    total = 0
    while True:
        count = os.readv(fd, [buf])
        if not count:
            return digest.hexdigest(), total
        digest.update(view[:count])
        total += count


def hash_file(path: str | pathlib.Path) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return hash_fd(fd)
    finally:
        os.close(fd)


def hash_link(target: str) -> str:
    return hashlib.sha256(os.fsencode(target)).hexdigest()


def root_hash(entries: Iterable[Entry]) -> str:
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: os.fsencode(e.path)):
        digest.update(entry.record())
    return digest.hexdigest()


def dump_manifest(entries: Sequence[Entry]) -> bytes:
    body = {"format": MANIFEST_FORMAT, "fields": list(FIELDS), "entries": [e.row() for e in entries]}
    return json.dumps(body, separators=(",", ":")).encode()


def load_manifest(data: bytes) -> list[Entry]:
    body = json.loads(data)
    fields = tuple(body["fields"])
    if fields == FIELDS:
        return [Entry(*row) for row in body["entries"]]
    return [Entry(**dict(zip(fields, row, strict=True))) for row in body["entries"]]


def normalize_paths(paths: Sequence[str] | None) -> list[str] | None:
    """Partial paths as relative POSIX paths inside the payload, none covering another; None
    means the whole tree."""
    if not paths:
        return None
    clean: list[str] = []
    for raw in paths:
        text = raw.strip()
        if not text or text.startswith("/"):
            raise errors.InvalidInputError(f"invalid partial path {raw!r}: give a path relative to main/")
        norm = posixpath.normpath(text)
        if norm == ".":
            return None
        if norm == ".." or norm.startswith("../"):
            raise errors.InvalidInputError(f"invalid partial path {raw!r}: it leaves main/")
        clean.append(norm)
    clean.sort()
    kept: list[str] = []
    for path in clean:
        if not any(path == k or path.startswith(k + "/") for k in kept):
            kept.append(path)
    return kept


def covered(path: str, partial: Sequence[str] | None) -> bool:
    """Whether a path lies inside the snapshot's partial paths (or the snapshot is whole)."""
    return partial is None or any(path == p or path.startswith(p + "/") for p in partial)


@dataclasses.dataclass
class Scan:
    """A walk's result: every directory, file and symlink with its lstat, and what was skipped."""

    items: list[tuple[str, os.stat_result]] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def kind_of(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return LINK
    return None


def walk(base: pathlib.Path, partial: Sequence[str] | None = None) -> Scan:
    """Every entry under `base` (or under its partial paths, with their ancestor directories),
    by lstat; sockets, FIFOs and devices are listed in `skipped`, never followed or copied."""
    scan = Scan()
    scan.items = list(iterate(base, partial, scan.skipped))
    return scan


def iterate(
    base: pathlib.Path, partial: Sequence[str] | None, skipped: list[str]
) -> Iterator[tuple[str, os.stat_result]]:
    """`walk` as it goes, so that copying starts before walking ends: a directory comes before
    its contents, and the files of one directory come one after the other."""
    if partial is None:
        yield from _walk_into(base, "", skipped)
        return
    seen: set[str] = set()
    for path in partial:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            ancestor = "/".join(parts[:depth])
            if ancestor not in seen:
                seen.add(ancestor)
                st = os.lstat(base / ancestor)
                if not stat.S_ISDIR(st.st_mode):
                    raise errors.InvalidInputError(f"partial path {path!r}: {ancestor!r} is not a directory")
                yield ancestor, st
        try:
            st = os.lstat(base / path)
        except FileNotFoundError as error:
            raise errors.InvalidInputError(f"partial path {path!r} does not exist in {base.name}/") from error
        kind = kind_of(st.st_mode)
        if kind is None:
            skipped.append(path)
            continue
        seen.add(path)
        yield path, st
        if kind == DIR:
            yield from _walk_into(base / path, path, skipped)


def _walk_into(directory: pathlib.Path, prefix: str, skipped: list[str]) -> Iterator[tuple[str, os.stat_result]]:
    stack = [(str(directory), prefix)]
    while stack:
        real, rel = stack.pop()
        try:
            iterator = os.scandir(real)
        except FileNotFoundError:  # removed while we walked: it is not in this snapshot
            continue
        with iterator:
            for item in iterator:
                path = f"{rel}/{item.name}" if rel else item.name
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                kind = kind_of(st.st_mode)
                if kind is None:
                    skipped.append(path)
                    continue
                yield path, st
                if kind == DIR:
                    stack.append((item.path, path))
