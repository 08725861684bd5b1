"""A small supervisor for the local cluster's processes: start detached, find again, stop cleanly.

Each process runs in its own session (so it outlives the `roadie cluster up` that started it, and
its whole group can be signalled), logs to `<state>/logs/<name>.log`, and is remembered by a pid
file holding its pid and executable, so a recycled pid is never mistaken for one of ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Running:
    name: str
    pid: int
    executable: str
    log: pathlib.Path


def run_dir(state: pathlib.Path) -> pathlib.Path:
    return state / "run"


def log_path(state: pathlib.Path, name: str) -> pathlib.Path:
    return state / "logs" / f"{name}.log"


def _pid_file(state: pathlib.Path, name: str) -> pathlib.Path:
    return run_dir(state) / f"{name}.pid"


def _alive(pid: int, executable: str) -> bool:
    try:
        status = pathlib.Path(f"/proc/{pid}/stat").read_text()
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    head, _, rest = status.rpartition(")")
    if rest.split()[0] == "Z":  # a zombie is gone, only unreaped
        return False
    wanted = os.path.basename(executable)
    if cmdline and cmdline[0]:
        return os.path.basename(cmdline[0].decode()) == wanted
    # cmdline reads empty while the process forks (its memory map is busy): the kernel's short
    # name, cut at 15 characters, still tells whose process it is
    return head.split("(", 1)[-1] == wanted[:15]


def find(state: pathlib.Path, name: str) -> Running | None:
    path = _pid_file(state, name)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(record["pid"], record["executable"]):
        return None
    return Running(name, record["pid"], record["executable"], log_path(state, name))


def start(
    state: pathlib.Path,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: pathlib.Path | None = None,
) -> Running:
    """Start `argv` detached, unless a process of that name is already running."""
    existing = find(state, name)
    if existing:
        return existing
    log = log_path(state, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    run_dir(state).mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    _pid_file(state, name).write_text(json.dumps({"pid": proc.pid, "executable": argv[0]}))
    return Running(name, proc.pid, argv[0], log)


def stop(state: pathlib.Path, name: str, *, grace: float = 10.0) -> bool:
    """Stop one process and its group: TERM, then KILL after `grace` seconds. True if it ran."""
    found = find(state, name)
    _pid_file(state, name).unlink(missing_ok=True)
    if found is None:
        return False
    _signal_group(found.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(found.pid, found.executable):
        _reap(found.pid)
        time.sleep(0.05)
    if _alive(found.pid, found.executable):
        _signal_group(found.pid, signal.SIGKILL)
        while _alive(found.pid, found.executable):
            _reap(found.pid)
            time.sleep(0.05)
    _reap(found.pid)  # it may have turned zombie between two checks: collect it, leave no entry
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (started in this very process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def known(state: pathlib.Path) -> list[str]:
    folder = run_dir(state)
    return sorted(p.stem for p in folder.glob("*.pid")) if folder.is_dir() else []
