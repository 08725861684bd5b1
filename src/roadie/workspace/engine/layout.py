"""The JVS layout of a volume, snapshot IDs, names, and the file-system primitives every step uses.

```
<root>/
  .jvs/format_version            "1"
  .jvs/lock                      flock: one mutating run at a time, readers share
  .jvs/snapshots/<id>/           a published snapshot: payload/, manifest.json, descriptor.json, .READY
  .jvs/snapshots/<id>.tmp/       a snapshot being written (never listed; removed by recovery)
  .jvs/intents/                  what an interrupted run was doing, for the next run's recovery
  .jvs/staging/                  trees being restored, before they replace their target
  .jvs/trash/                    snapshots being deleted (already invisible)
  .jvs/worktrees/<name>/config.json   which snapshot a payload root was last taken or restored as
  main/                          the payload the workspace pods work in
  worktrees/<name>/              other payload roots, made by restores
```

Payload roots hold nothing of JVS's, so a snapshot of `main/` is exactly the user's files.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import stat
import sys
import time
from collections.abc import Iterator
from typing import Any

from roadie.workspace.engine import errors

FORMAT_VERSION = 1
MAIN = "main"
ID_PATTERN = re.compile(r"^[0-9]{13,}-[0-9a-f]{8}$")
TAG_PATTERN = re.compile(r"^[a-zA-Z0-9._-]+$")
NAME_MAX = 255
#: The test-only hook: naming a step here makes the engine SIGKILL itself when it reaches it.
CRASH_ENV = "ROADIE_JVS_CRASH_AT"
#: Set to "off" to act as a file system without RENAME_EXCHANGE (tests of the two-rename swap).
EXCHANGE_ENV = "ROADIE_JVS_RENAME_EXCHANGE"


def new_id(now: float | None = None) -> str:
    """`<unix-ms>-<8 hex>`: sorts by creation time, unique without coordination."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:013d}-{secrets.token_hex(4)}"


def id_time(snapshot_id: str) -> datetime.datetime:
    """The creation time an ID carries (its millisecond part)."""
    return datetime.datetime.fromtimestamp(int(snapshot_id.split("-", 1)[0]) / 1000, tz=datetime.UTC)


def check_tag(tag: str) -> str:
    if not TAG_PATTERN.fullmatch(tag) or len(tag) > NAME_MAX:
        raise errors.InvalidInputError(f"invalid tag {tag!r}: use letters, digits, '.', '_' and '-' only")
    return tag


def check_worktree(name: str) -> str:
    if not TAG_PATTERN.fullmatch(name) or name in {".", ".."} or len(name) > NAME_MAX:
        raise errors.InvalidInputError(
            f"invalid worktree name {name!r}: use letters, digits, '.', '_' and '-' only (not '.' or '..')"
        )
    return name


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where everything lives on one volume."""

    root: pathlib.Path

    @property
    def jvs(self) -> pathlib.Path:
        return self.root / ".jvs"

    @property
    def main(self) -> pathlib.Path:
        return self.root / MAIN

    @property
    def worktrees(self) -> pathlib.Path:
        return self.root / "worktrees"

    @property
    def snapshots(self) -> pathlib.Path:
        return self.jvs / "snapshots"

    @property
    def intents(self) -> pathlib.Path:
        return self.jvs / "intents"

    @property
    def staging(self) -> pathlib.Path:
        return self.jvs / "staging"

    @property
    def trash(self) -> pathlib.Path:
        return self.jvs / "trash"

    def snapshot_dir(self, snapshot_id: str) -> pathlib.Path:
        return self.snapshots / snapshot_id

    def payload_root(self, worktree: str | None) -> pathlib.Path:
        """`main/` for None or "main", else `worktrees/<name>/`."""
        if worktree in (None, MAIN):
            return self.main
        return self.worktrees / check_worktree(worktree)

    def worktree_config(self, worktree: str | None) -> pathlib.Path:
        return self.jvs / "worktrees" / (worktree or MAIN) / "config.json"


def init(root: pathlib.Path) -> Layout:
    """Lay the volume out; idempotent, and never touches a payload that is already there."""
    lay = Layout(root)
    version_file = lay.jvs / "format_version"
    if version_file.exists():
        return open_layout(root)
    for directory in (lay.snapshots, lay.intents, lay.staging, lay.trash, lay.main, lay.worktrees):
        directory.mkdir(parents=True, exist_ok=True)
    if not lay.worktree_config(None).exists():
        write_json(lay.worktree_config(None), {"name": MAIN, "headSnapshotID": None})
    atomic_write(version_file, f"{FORMAT_VERSION}\n".encode())
    return lay


def open_layout(root: pathlib.Path) -> Layout:
    """The layout of an initialised volume; refuses a volume of a newer format."""
    lay = Layout(root)
    try:
        version = int((lay.jvs / "format_version").read_text().strip())
    except FileNotFoundError as error:
        raise errors.NotFoundError(
            f"{root} is not a JVS volume (no .jvs/format_version): run `roadie jvs init`"
        ) from error
    if version > FORMAT_VERSION:
        raise errors.InvalidInputError(f"{root} has JVS format {version}; this engine reads format {FORMAT_VERSION}")
    for directory in (lay.snapshots, lay.intents, lay.staging, lay.trash, lay.worktrees):
        directory.mkdir(parents=True, exist_ok=True)
    return lay


def crash_point(step: str) -> None:
    """Die here, as a node losing the pod would, when a test asks for this step."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: pathlib.Path, data: bytes, *, sync: bool = True) -> None:
    """Replace a small file so that readers see the old or the new content, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, path)
    if sync:
        fsync_dir(path.parent)


def write_json(path: pathlib.Path, value: Any, *, sync: bool = True) -> None:
    atomic_write(path, json.dumps(value, indent=1, sort_keys=True).encode() + b"\n", sync=sync)


def read_json(path: pathlib.Path) -> Any:
    return json.loads(path.read_bytes())


_libc = ctypes.CDLL(None, use_errno=True)


def sync_filesystem(path: pathlib.Path) -> None:
    """Flush every dirty page of the volume at once (syncfs), cheaper than an fsync per file."""
    syncfs = getattr(_libc, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(first: pathlib.Path, second: pathlib.Path) -> bool:
    """Swap two directories in one atomic step (renameat2 RENAME_EXCHANGE); False if unsupported."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None or os.environ.get(EXCHANGE_ENV) == "off":
        return False
    result = renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def remove_tree(path: pathlib.Path) -> None:
    """Remove a tree even where read-only directories (kept from a payload) would stop rmtree."""
    if not os.path.lexists(path):
        return
    if not path.is_dir() or path.is_symlink():
        path.unlink()
        return

    def retry(function: Any, target: str, _exc: object) -> None:
        parent = os.path.dirname(target)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
        if os.path.isdir(target) and not os.path.islink(target):
            with contextlib.suppress(OSError):
                os.chmod(target, stat.S_IRWXU)
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                function(target)

    handler: dict[str, Any] = {"onexc" if sys.version_info >= (3, 12) else "onerror": retry}
    shutil.rmtree(path, **handler)


def head(lay: Layout, worktree: str | None = None) -> str | None:
    """The snapshot a payload root was last taken as or restored from."""
    try:
        value = read_json(lay.worktree_config(worktree)).get("headSnapshotID")
    except (FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, str) else None


def set_head(lay: Layout, worktree: str | None, snapshot_id: str | None, *, sync: bool = True) -> None:
    write_json(lay.worktree_config(worktree), {"name": worktree or MAIN, "headSnapshotID": snapshot_id}, sync=sync)


@contextlib.contextmanager
def locked(lay: Layout, *, exclusive: bool, timeout: float) -> Iterator[None]:
    """Hold the volume's flock; JuiceFS shares flocks between its clients, so two Jobs on two
    nodes exclude each other too. The kernel drops it when the holder dies, however it dies."""
    fd = os.open(lay.jvs / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError as error:
                if time.monotonic() >= deadline:
                    raise errors.BusyError(f"another JVS run holds {lay.jvs / 'lock'}; waited {timeout:g}s") from error
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
