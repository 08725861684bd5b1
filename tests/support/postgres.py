"""A real PostgreSQL server for tests, started from the machine's PostgreSQL binaries.

A fake would not show what matters about a database sink: connections that break when the server
stops, reconnection, upserts that race. So the tests run `initdb` and `postgres` from the
installed PostgreSQL (Debian's `postgresql` package puts them in `/usr/lib/postgresql/<v>/bin`),
in a temporary directory, listening on 127.0.0.1 on a free port, with trust authentication and
durability off (a test database needs no fsync). PostgreSQL refuses to run as root, so under root
the server runs as `nobody`, in a directory that user owns. The server can be stopped and started
again on the same port and data, which is how tests take the database away mid-test.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

READY_LINE = "database system is ready to accept connections"
INSTALL_HINT = "install PostgreSQL's server binaries (Debian/Ubuntu: apt-get install -y postgresql)"


def bindir() -> pathlib.Path:
    """The folder holding `initdb` and `postgres`: pg_config's answer, else the newest Debian one,
    else the PATH."""
    candidates: list[pathlib.Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout
            candidates.append(pathlib.Path(out.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2] or 0), reverse=True)
    candidates += [pathlib.Path(p) for p in versions]
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(pathlib.Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise RuntimeError(f"no PostgreSQL server binaries (initdb, postgres) found: {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    user = "roadie"

    def __init__(self, root: pathlib.Path, port: int, binaries: pathlib.Path) -> None:
        self.root = root
        self.port = port
        self.binaries = binaries
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._uid: int | None = None
        self._gid: int | None = None
        self.sockets.mkdir(mode=0o700)
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            nobody = pwd.getpwnam("nobody")
            self._uid, self._gid = nobody.pw_uid, nobody.pw_gid
            for path in (root, self.sockets):
                os.chown(path, self._uid, self._gid)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root), "LC_ALL": "C", "TZ": "UTC"}

    def init(self) -> None:
        command = [str(self.binaries / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust"]
        command += ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self._env(),
            check=False,
            user=self._uid,
            group=self._gid,
            extra_groups=None if self._uid is None else [],
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once it accepts connections."""
        assert self.process is None, "already running"
        offset = self.log.stat().st_size if self.log.exists() else 0
        command = [str(self.binaries / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port)]
        command += ["-k", str(self.sockets), "-c", "fsync=off", "-c", "synchronous_commit=off"]
        command += ["-c", "full_page_writes=off", "-c", "logging_collector=off"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                user=self._uid,
                group=self._gid,
                extra_groups=None if self._uid is None else [],
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log.read_text(errors="replace")[offset:]:
                return
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"postgres exited at start: {self.tail()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres not ready after {timeout}s: {self.tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown: open connections are cut, as when a database goes away."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def server() -> Iterator[PostgresServer]:
    """A fresh, running server; stopped and removed afterwards."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="roadie-postgres-"))  # in /tmp: reachable by `nobody`
    try:
        running = PostgresServer(root, free_port(), bindir())
        running.init()
        running.start()
        try:
            yield running
        finally:
            running.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
