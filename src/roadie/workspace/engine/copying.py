"""How file bytes get into a snapshot and back out: the three engines, hashing while copying,
reflink clones, hard links to the parent's copy, and restoring one file with its metadata.

- `copy`: each file is cloned with FICLONE where the file system offers reflinks (XFS, Btrfs),
  else read once through a 256 KiB buffer that feeds both SHA-256 and the write.
- `reflink-copy`: the same, but a volume without reflinks is refused, not copied in full.
- `juicefs-clone`: `juicefs clone` of the payload (a metadata copy on JuiceFS), then hashed.

Stored files are created read-only (0444): nothing may write into a published snapshot, and
their real mode, owner and times live in the manifest, so that one stored inode can be
hard-linked into many snapshots whatever each recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import pathlib
import shutil
import subprocess

from roadie.workspace.engine import compression, errors, tree

ENGINES = ("copy", "reflink-copy", "juicefs-clone")
FICLONE = 0x40049409  # _IOW(0x94, 9, int)
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}
_NO_RANGE = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
NEW_RW_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # a clone is hashed through its own descriptor


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an engine name means on this volume: whether to try reflinks, or to use juicefs."""

    engine: str
    codec: compression.Codec
    level: int
    reflink: bool = False
    juicefs: bool = False


def try_clone(dst_fd: int, src_fd: int) -> bool:
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError as error:
        if error.errno in _NO_CLONE:
            return False
        raise
    return True


def probe_reflink(directory: pathlib.Path) -> bool:
    """Whether the file system under `directory` clones files (one tiny clone, then removed)."""
    src, dst = directory / ".reflink-probe-a", directory / ".reflink-probe-b"
    try:
        src.write_bytes(b"\0" * 4096)
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            return try_clone(fout.fileno(), fin.fileno())
    except OSError:
        return False
    finally:
        for path in (src, dst):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def filesystem_type(path: pathlib.Path) -> str:
    """The type of the mount holding `path` (`ext4`, `fuse.juicefs`, ...), from mountinfo."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        lines = pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].encode().decode("unicode_escape")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, right.split()[0]
    return kind


def plan(engine: str, volume: pathlib.Path, codec: compression.Codec, level: int) -> Plan:
    """Check that `engine` can run on this volume, or say why not (before anything is written)."""
    if engine not in ENGINES:
        raise errors.InvalidInputError(f"unknown engine {engine!r}: use copy, reflink-copy or juicefs-clone")
    if engine != "copy" and codec != "none":
        raise errors.InvalidInputError(f"engine {engine} stores clones, which cannot be compressed: use engine copy")
    if engine == "juicefs-clone":
        kind = filesystem_type(volume)
        if kind != "fuse.juicefs":
            raise errors.UnavailableError(f"engine juicefs-clone needs a JuiceFS volume; {volume} is on {kind}")
        if shutil.which("juicefs") is None:
            raise errors.UnavailableError("engine juicefs-clone needs the juicefs binary on PATH, and it is not there")
        return Plan(engine, codec, level, juicefs=True)
    reflink = codec == "none" and probe_reflink(volume)
    if engine == "reflink-copy" and not reflink:
        raise errors.UnavailableError(
            f"engine reflink-copy needs reflink clones (XFS with reflink=1, Btrfs); {volume} is on "
            f"{filesystem_type(volume)}, which has none: use engine copy"
        )
    return Plan(engine, codec, level, reflink=reflink)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _copy_hash(src: int, dst: int) -> tuple[str, int]:
    """Read once, hash and write the same buffer."""
    digest = hashlib.sha256()
    buf = tree.buffer()
    view = memoryview(buf)
    total = 0
    while True:
        count = os.readv(src, [buf])
        if not count:
            return digest.hexdigest(), total
        chunk = view[:count]
        digest.update(chunk)
        _write_all(dst, chunk)
        total += count


@dataclasses.dataclass(frozen=True)
class Stored:
    """One file put into a snapshot: its content hash and size, what it takes on disk, and
    whether the source kept still while it was read (only then may a later snapshot trust a
    matching stat instead of reading it)."""

    digest: str
    size: int
    stored: int
    stable: bool


@dataclasses.dataclass
class Dirs:
    """Open directories of one batch: the source's, the new snapshot's, the parent snapshot's."""

    source: int
    target: int
    parent: int | None = None

    def close(self) -> None:
        for fd in (self.source, self.target, self.parent):
            if fd is not None and fd >= 0:
                os.close(fd)


def hash_at(directory: int, name: str) -> tuple[str, int]:
    fd = os.open(name, READ_FLAGS, dir_fd=directory)
    try:
        return tree.hash_fd(fd)
    finally:
        os.close(fd)


def store(dirs: Dirs, name: str, how: Plan, before: os.stat_result) -> Stored:
    """Copy (or clone, or compress) one file into the snapshot, hashing what was read."""
    fin = os.open(name, READ_FLAGS, dir_fd=dirs.source)
    try:
        fout = os.open(name, NEW_RW_FLAGS if how.reflink else NEW_FLAGS, 0o444, dir_fd=dirs.target)
        try:
            if how.codec != "none":
                digest, size, stored = compression.compress_fd(fin, fout, how.codec, how.level)
            elif how.reflink and try_clone(fout, fin):
                digest, size = tree.hash_fd(fout)  # the clone, not the source: what is stored is hashed
                stored = size
            else:
                digest, size = _copy_hash(fin, fout)
                stored = size
        finally:
            os.close(fout)
        after = os.fstat(fin)
    finally:
        os.close(fin)
    stable = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (size, before.st_mtime_ns, before.st_ctime_ns)
    return Stored(digest, size, stored, stable)


def link_at(dirs: Dirs, name: str) -> bool:
    """Hard-link the parent's stored file; False when the link cannot be made (too many links,
    or the parent's copy is gone), so the caller copies instead."""
    try:
        os.link(name, name, src_dir_fd=dirs.parent, dst_dir_fd=dirs.target, follow_symlinks=False)
    except OSError as error:
        if error.errno in (errno.EMLINK, errno.ENOENT, errno.EPERM, errno.EXDEV):
            return False
        raise
    return True


def juicefs_clone(src: pathlib.Path, dst: pathlib.Path) -> None:
    """A metadata-only copy of a file or directory on JuiceFS, owners and modes kept."""
    result = subprocess.run(
        ["juicefs", "clone", "--preserve", str(src), str(dst)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise errors.EngineError(f"juicefs clone {src} failed: {(result.stderr or result.stdout).strip()[-500:]}")


def _copy_range(src: int, dst: int) -> None:
    """In-kernel copy (a metadata clone on JuiceFS); a plain copy where the kernel refuses."""
    try:
        while os.copy_file_range(src, dst, 1 << 30):
            pass
        return
    except OSError as error:
        if error.errno not in _NO_RANGE:
            raise
    buf = tree.buffer()
    view = memoryview(buf)
    while count := os.readv(src, [buf]):
        _write_all(dst, view[:count])


def restore_file(stored: str, dst: str, entry: tree.Entry, *, reflink: bool, owners: bool) -> None:
    """Write one file of a snapshot back with its mode, owner and mtime."""
    fin = os.open(stored, READ_FLAGS)
    try:
        fout = os.open(dst, NEW_FLAGS, 0o600)
        try:
            if entry.codec != "none":
                compression.decompress_fd(fin, fout, entry.codec)
            elif not (reflink and try_clone(fout, fin)):
                _copy_range(fin, fout)
            if owners:
                os.fchown(fout, entry.uid, entry.gid)
            os.fchmod(fout, entry.mode)
            os.utime(fout, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def set_metadata(path: str, entry: tree.Entry, *, owners: bool) -> None:
    """Owner, mode and mtime of a directory or symlink (a symlink keeps no mode of its own)."""
    link = entry.kind == tree.LINK
    if owners:
        os.chown(path, entry.uid, entry.gid, follow_symlinks=not link)
    if not link:
        os.chmod(path, entry.mode)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=not link)
