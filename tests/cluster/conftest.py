"""Fixtures for tests against the local control plane: the cluster (one per test session), a
namespace per test, a synchronous client, and the operator running as a real process.

The cluster is the one `ROADIE_TEST_KUBECONFIG` names, or a cluster named `test` on its own ports
(so a developer's demo cluster is left alone), brought up here and taken down at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import lightkube
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Namespace, ServiceAccount

from roadie.devcluster import cluster

TEST_CLUSTER = cluster.ClusterConfig(name="test", port_base=16600)
OPERATOR_METRICS_PORT = int(os.environ.get("ROADIE_TEST_OPERATOR_PORT", "18480"))
OPERATOR_HEALTH_PORT = OPERATOR_METRICS_PORT + 1
#: Short deadlines so that tests of deadlines take seconds, not the production defaults' minutes.
OPERATOR_ENV = {
    "ROADIE_WORKSHOP_PROVISIONING_DEADLINE": "15s",
    "ROADIE_WORKSHOP_EXPIRY_WARNING": "4s",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[pathlib.Path]:
    given = os.environ.get("ROADIE_TEST_KUBECONFIG")
    if given:
        yield pathlib.Path(given)
        return
    path = cluster.up(TEST_CLUSTER)
    users = TEST_CLUSTER.state / "test-sessions"
    with _counter(users) as count:
        count(+1)
    yield path
    with _counter(users) as count:
        last = count(-1) == 0
    if last and not os.environ.get("ROADIE_TEST_KEEP_CLUSTER"):
        cluster.down(TEST_CLUSTER)


@contextlib.contextmanager
def _counter(path: pathlib.Path) -> Iterator[Callable[[int], int]]:
    """A count of test sessions using the cluster, so only the last one to finish takes it down."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)

        def change(delta: int) -> int:
            value = max(0, int(path.read_text() or 0) if path.exists() else 0) + delta
            path.write_text(str(max(0, value)))
            return value

        yield change


@pytest.fixture(scope="session")
def kube(kubeconfig: pathlib.Path) -> lightkube.Client:
    # a minute, not lightkube's 10 s: a megabyte status written while the 2-core machine is busy
    # can take longer, and a test is about what Roadie does, not how loaded the machine is
    config = lightkube.KubeConfig.from_file(kubeconfig)
    return lightkube.Client(config=config, field_manager="roadie-tests", timeout=httpx2.Timeout(60.0))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiError as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def events(
    kube: lightkube.Client, namespace: str, kind: str | None = None, name: str | None = None
) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events in `namespace`, about `kind`/`name` when given."""
    return [
        (e.type or "", e.reason or "", e.message or "")
        for e in kube.list(Event, namespace=namespace)
        if (kind is None or e.involvedObject.kind == kind) and (name is None or e.involvedObject.name == name)
    ]


def wait_for_events(
    kube: lightkube.Client,
    namespace: str,
    reasons: set[str],
    *,
    kind: str | None = None,
    name: str | None = None,
    type_: str | None = None,
    timeout: float = 15.0,
) -> list[tuple[str, str, str]]:
    """Wait until Events with all of `reasons` exist. The operator records Events in the background
    after the status write (as client-go's recorder does), so a test reading them at once races."""

    def seen() -> list[tuple[str, str, str]] | None:
        found = events(kube, namespace, kind, name)
        have = {r for t, r, _ in found if type_ is None or t == type_}
        return found if reasons <= have else None

    return wait_for(f"events {sorted(reasons)} on {kind or '*'}/{name or '*'}", seen, timeout)


def gone(check: Callable[[], object]) -> Callable[[], bool]:
    """A `wait_for` check that is true once `check` raises 404 (wait_for retries other errors)."""

    def probe() -> bool:
        try:
            check()
        except ApiError as error:
            if error.status.code == 404:
                return True
            raise
        return False

    return probe


def deletion_seen(get: Callable[[], Any]) -> Callable[[], float | None]:
    """A `wait_for` check giving the moment the object is seen deleting (or already gone)."""

    def probe() -> float | None:
        try:
            current = get()
        except ApiError as error:
            if error.status.code == 404:
                return time.time()
            raise
        return time.time() if current.metadata.deletionTimestamp else None

    return probe


@pytest.fixture
def namespace(kube: lightkube.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    base = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name, labels={"roadie.dev/test": "true"})))
    wait_for("the default service account", lambda: kube.get(ServiceAccount, "default", namespace=name))
    yield name
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


class OperatorProcess:
    """`roadie run` as a child process against the test cluster; can be killed and restarted."""

    #: where `/readyz` answers (a subclass that moves the probes sets its own)
    health_port = OPERATOR_HEALTH_PORT

    def __init__(
        self, kubeconfig: pathlib.Path, log: pathlib.Path, extra: list[str], env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.extra = extra
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **OPERATOR_ENV, **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roadie", "run", "--metrics-port", str(OPERATOR_METRICS_PORT),
                 "--health-port", str(OPERATOR_HEALTH_PORT), *self.extra],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        wait_for("the operator's /readyz", self.ready, timeout=60)

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"the operator exited with {self.proc.returncode}; see {self.log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a node dies under the operator."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{OPERATOR_METRICS_PORT}/metrics", timeout=5) as r:
            return r.read().decode()


@contextlib.contextmanager
def instead_of(shared: OperatorProcess, own: OperatorProcess) -> Iterator[OperatorProcess]:
    """Run `own` (which a test may kill, or which has settings of its own) in place of the shared
    operator, and bring the shared one back afterwards; `own` is started by the caller."""
    shared.stop()
    try:
        yield own
    finally:
        own.stop()
        print(f"operator log: {own.log}")
        shared.start()


@pytest.fixture(scope="session")
def operator(kubeconfig: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator with every controller, CRDs installed, short timings for tests."""
    subprocess.run([sys.executable, "-m", "roadie", "install", "--kubeconfig", str(kubeconfig)], check=True)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(kubeconfig, log, ["--resync-seconds", "5"])
    process.start()
    yield process
    process.stop()
    print(f"operator log: {log}")
