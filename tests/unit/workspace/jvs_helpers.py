"""Helpers of the engine's tests: real trees written to tmp_path, read back for comparison, and
the engine run in-process or, to be killed at a step, as a subprocess."""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys
from typing import Any

from roadie.workspace.engine import layout, publish, restore, volume

Tree = dict[str, tuple[Any, ...]]
CLI = "from roadie.cli.jvs import app; app(prog_name='roadie jvs')"


def write(base: pathlib.Path, files: dict[str, bytes | str]) -> None:
    """Files by relative path; parents made as needed."""
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def tree(base: pathlib.Path) -> Tree:
    """Everything under `base` that a restore must bring back: type, bytes, mode, mtime, target."""
    out: Tree = {}
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = pathlib.Path(directory) / name
            rel = str(path.relative_to(base))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("f", path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def snapshot(root: pathlib.Path, **options: Any) -> dict[str, Any]:
    options.setdefault("sync", False)
    with volume.opened(root) as lay:
        return publish.snapshot(lay, publish.Options(**options))


def restore_to(root: pathlib.Path, ref: str, worktree: str | None = None) -> dict[str, Any]:
    with volume.opened(root) as lay:
        return restore.restore(lay, ref, worktree=worktree, sync=False)


def engine(root: pathlib.Path, *args: str, crash_at: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`roadie jvs ARGS --root ROOT` in a child process, killed by itself at `crash_at`."""
    environment = {**os.environ, **env}
    environment.pop(layout.CRASH_ENV, None)
    if crash_at:
        environment[layout.CRASH_ENV] = crash_at
    command = [sys.executable, "-c", CLI, *args, "--root", str(root), "--termination-log", ""]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120, check=False)


def leftovers(root: pathlib.Path) -> list[str]:
    """What an interrupted run may leave: unfinished snapshots, intents, staged trees, trash."""
    jvs = root / ".jvs"
    found = [p.name for p in (jvs / "snapshots").iterdir() if p.name.endswith(".tmp")]
    for folder in ("intents", "staging", "trash"):
        found += [f"{folder}/{p.name}" for p in (jvs / folder).iterdir()]
    return found
