"""Two operator processes with `--leader-elect` against the local control plane: exactly one
reconciles, and when it dies the other takes over, within the lease (15 s) after SIGKILL and
within the retry period (2 s) after a clean stop, which releases the Lease.

What a failover must not lose is checked on real objects: a Workshop created while nobody leads
reaches Ready, and one whose expiry fell due while nobody led is deleted as soon as the new
leader starts (its caches were warm, so it acts without listing anything first). The Lease lives
in the test's namespace (POD_NAMESPACE), so tests never see each other's. The measured times are
printed (`pytest -s`).
"""

from __future__ import annotations

import datetime
import pathlib
import re
import time
import urllib.request
from collections.abc import Iterator

import lightkube
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources.coordination_v1 import Lease
from lightkube.types import PatchType
from tests.cluster import workshops
from tests.cluster.conftest import OPERATOR_METRICS_PORT, OperatorProcess, deletion_seen, wait_for

from roadie.core import leader

PORTS = {"roadie-a": OPERATOR_METRICS_PORT + 10, "roadie-b": OPERATOR_METRICS_PORT + 12}


class Replica(OperatorProcess):
    """One replica of the operator: its own pod name and ports, the Lease in `namespace`."""

    def __init__(self, kubeconfig: pathlib.Path, folder: pathlib.Path, name: str, namespace: str) -> None:
        self.port = PORTS[name]
        self.health_port = self.port + 1
        flags = [
            *("--controllers", "workshop", "--leader-elect"),
            *("--metrics-bind-address", f"127.0.0.1:{self.port}"),
            *("--health-probe-bind-address", f"127.0.0.1:{self.port + 1}"),
        ]
        super().__init__(kubeconfig, folder / f"{name}.log", flags, {"POD_NAME": name, "POD_NAMESPACE": namespace})

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def sample(self, pattern: str) -> float:
        """The sum of the series whose line matches `pattern` (0 when there is none)."""
        lines = [line for line in self.metrics().splitlines() if re.match(pattern, line)]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def holder(kube: lightkube.Client, namespace: str) -> str | None:
    try:
        lease = kube.get(Lease, leader.NAME, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise
    return lease.spec.holderIdentity if lease.spec else None


@pytest.fixture
def replicas(
    kubeconfig: pathlib.Path, namespace: str, operator: OperatorProcess, tmp_path: pathlib.Path
) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas in place of the shared operator (which elects nobody and would reconcile too)."""
    a = Replica(kubeconfig, tmp_path, "roadie-a", namespace)
    b = Replica(kubeconfig, tmp_path, "roadie-b", namespace)
    operator.stop()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
        print(f"replica logs: {a.log} {b.log}")
        operator.start()


def _start_a_leading_then_b(kube: lightkube.Client, namespace: str, a: Replica, b: Replica) -> None:
    a.start()
    wait_for("roadie-a holds the lease", lambda: holder(kube, namespace) == "roadie-a", 30)
    b.start()  # ready (caches synced) while standing by


def _expires_at(kube: lightkube.Client, namespace: str, name: str) -> float:
    raw = workshops.get(kube, namespace, name).status["expiresAt"]
    return datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def test_one_replica_reconciles_and_the_other_takes_over_after_sigkill(
    kube: lightkube.Client, namespace: str, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    _start_a_leading_then_b(kube, namespace, a, b)
    workshops.create(kube, workshops.manifest(namespace, "before"))
    wait_for("the first workshop Ready", lambda: workshops.phase(kube, namespace, "before") == "Ready", 60)
    workshop_reconciles = r'roadie_reconcile_total\{kind="Workshop"'
    assert a.sample(workshop_reconciles) > 0
    assert b.sample(workshop_reconciles) == 0, "the standby reconciled"
    assert (a.sample(r"roadie_leader "), b.sample(r"roadie_leader ")) == (1.0, 0.0)

    workshops.create(kube, workshops.manifest(namespace, "due", duration="8s"))
    wait_for("the short workshop Ready", lambda: workshops.phase(kube, namespace, "due") == "Ready", 60)
    expires_at = _expires_at(kube, namespace, "due")
    killed = time.time()
    a.kill()
    assert killed < expires_at, "the workshop expired before the leader died; the test proves nothing"
    workshops.create(kube, workshops.manifest(namespace, "meanwhile"))

    acquired = wait_for(
        "roadie-b takes the lease", lambda: holder(kube, namespace) == "roadie-b" and time.time(), 30, interval=0.05
    )
    failover = acquired - killed
    print(f"\nfailover after SIGKILL: {failover:.2f}s")
    assert failover <= leader.LEASE_DURATION + 0.5, f"took {failover:.2f}s"
    assert expires_at < acquired, "the expiry did not fall during the failover; the test proves nothing"

    deleted = wait_for(
        "the due workshop deleted", deletion_seen(lambda: workshops.get(kube, namespace, "due")), 30, 0.05
    )
    print(f"expiry after takeover: {deleted - acquired:.2f}s (due {acquired - expires_at:.2f}s before the takeover)")
    assert deleted - acquired < 3.0, f"deleted {deleted - acquired:.2f}s after the new leader took over"
    wait_for("the workshop made meanwhile Ready", lambda: workshops.phase(kube, namespace, "meanwhile") == "Ready", 60)
    assert b.sample(r"roadie_leader ") == 1.0


def test_a_clean_stop_hands_over_within_the_retry_period(
    kube: lightkube.Client, namespace: str, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    _start_a_leading_then_b(kube, namespace, a, b)
    assert a.proc is not None
    stopped = time.time()
    a.proc.terminate()
    acquired = wait_for(
        "roadie-b takes the lease", lambda: holder(kube, namespace) == "roadie-b" and time.time(), 10, interval=0.02
    )
    print(f"\nfailover after SIGTERM: {acquired - stopped:.2f}s")
    assert acquired - stopped < leader.RETRY_PERIOD, f"took {acquired - stopped:.2f}s"
    assert a.proc.wait(15) == 0
    workshops.create(kube, workshops.manifest(namespace, "after"))
    wait_for("a workshop Ready under the new leader", lambda: workshops.phase(kube, namespace, "after") == "Ready", 60)


def test_a_leader_that_finds_its_lease_taken_exits(
    kube: lightkube.Client, namespace: str, replicas: tuple[Replica, Replica]
) -> None:
    a, _ = replicas
    a.start()
    wait_for("roadie-a holds the lease", lambda: holder(kube, namespace) == "roadie-a", 30)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    taken = time.time()
    kube.patch(
        Lease,
        leader.NAME,
        {"spec": {"holderIdentity": "someone-else", "renewTime": now, "leaseDurationSeconds": 15}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    assert a.proc is not None
    code = a.proc.wait(10)
    print(f"\nexit after the lease was taken: {time.time() - taken:.2f}s")
    assert code == 1
    assert "lost the lease" in a.log.read_text()
    assert holder(kube, namespace) == "someone-else"  # it did not write the lease back
