"""`--metrics-secure` against the local API server: /metrics over HTTPS answers 200 to a
ServiceAccount bound to the `roadie-metrics-reader` ClusterRole, 403 to one that is not, and 401
without a token or with one the API server refuses, exactly as controller-runtime's secure
metrics answer (Prometheus scrapes with its ServiceAccount's token).

The operator runs as a second process next to the shared one, on ports of its own and watching
only the test's (empty) namespace, so it reconciles nothing; tokens come from the TokenRequest
API (`kubectl create token`), as a projected ServiceAccount token would.
"""

from __future__ import annotations

import contextlib
import pathlib
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import lightkube
import pytest
import yaml
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.authorization_v1 import NonResourceAttributes, SubjectAccessReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.authorization_v1 import SubjectAccessReview
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding
from tests.cluster.conftest import OPERATOR_METRICS_PORT, OperatorProcess, wait_for

from roadie import rbac
from roadie.core import leader

PORT = OPERATOR_METRICS_PORT + 14
INSECURE = ssl.create_default_context()
INSECURE.check_hostname = False
INSECURE.verify_mode = ssl.CERT_NONE  # the certificate is the self-signed one made at start


class SecureOperator(OperatorProcess):
    health_port = PORT + 1

    def __init__(self, kubeconfig: pathlib.Path, log: pathlib.Path, namespace: str) -> None:
        flags = [
            *("--controllers", "workshop", "-n", namespace, "--metrics-secure"),
            *("--metrics-bind-address", f"127.0.0.1:{PORT}", "--health-probe-bind-address", f"127.0.0.1:{PORT + 1}"),
        ]
        super().__init__(kubeconfig, log, flags)


def scrape(token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"https://127.0.0.1:{PORT}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=INSECURE) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def token(kubeconfig: pathlib.Path, namespace: str, account: str) -> str:
    kubectl = str(pathlib.Path(sys.executable).with_name("kubectl"))
    done = subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "create", "token", account, "-n", namespace, "--duration=10m"],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def may_read_metrics(kube: lightkube.Client, namespace: str, account: str) -> bool:
    spec = SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{namespace}:{account}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
        nonResourceAttributes=NonResourceAttributes(path="/metrics", verb="get"),
    )
    answer = kube.create(SubjectAccessReview(spec=spec)).status
    return bool(answer and answer.allowed)


@pytest.fixture
def accounts(kube: lightkube.Client, namespace: str) -> Iterator[tuple[str, str]]:
    """A ServiceAccount bound to the metrics-reader ClusterRole, and one that is not."""
    reader_role = next(d for d in rbac.manifests() if d["metadata"]["name"] == rbac.METRICS_READER)
    kube.apply(codecs.from_dict(reader_role), field_manager="roadie-tests", force=True)
    for name in ("prometheus", "stranger"):
        kube.create(ServiceAccount(metadata=ObjectMeta(name=name, namespace=namespace)))
    binding = f"t-metrics-reader-{uuid.uuid4().hex[:6]}"
    kube.create(
        ClusterRoleBinding(
            metadata=ObjectMeta(name=binding),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name=rbac.METRICS_READER),
            subjects=[Subject(kind="ServiceAccount", name="prometheus", namespace=namespace)],
        )
    )
    wait_for("the binding in force", lambda: may_read_metrics(kube, namespace, "prometheus"))
    yield "prometheus", "stranger"
    kube.delete(ClusterRoleBinding, binding)


@pytest.fixture
def secure(
    kubeconfig: pathlib.Path, namespace: str, operator: OperatorProcess, tmp_path: pathlib.Path
) -> Iterator[SecureOperator]:
    process = SecureOperator(kubeconfig, tmp_path / "secure.log", namespace)
    process.start()
    yield process
    process.stop()
    print(f"operator log: {process.log}")


def test_only_callers_rbac_allows_read_the_metrics(
    kube: lightkube.Client,
    kubeconfig: pathlib.Path,
    namespace: str,
    accounts: tuple[str, str],
    secure: SecureOperator,
) -> None:
    reader, stranger = accounts
    assert not may_read_metrics(kube, namespace, stranger)

    status, body = scrape(token(kubeconfig, namespace, reader))
    assert status == 200, body
    assert "roadie_leader 1.0" in body

    status, body = scrape(token(kubeconfig, namespace, stranger))
    assert status == 403, body
    assert "roadie_" not in body

    for missing in (None, "not-a-token", token(kubeconfig, namespace, reader)[:-4] + "AAAA"):
        status, body = scrape(missing)
        assert status == 401, (missing, body)
        assert "roadie_" not in body


def test_the_secure_endpoint_speaks_tls_with_http1_only(secure: SecureOperator) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as raw, context.wrap_socket(raw) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(OSError):  # and no plain HTTP on that port
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=5)


def test_the_generated_rbac_covers_the_lease_and_the_reviews(
    kube: lightkube.Client,
    kubeconfig: pathlib.Path,
    namespace: str,
    accounts: tuple[str, str],
    operator: OperatorProcess,
    tmp_path: pathlib.Path,
) -> None:
    """Run as the operator's ServiceAccount with only deploy/rbac/ granted: it creates, renews and
    releases its Lease in roadie-system, and its TokenReviews and SubjectAccessReviews are allowed."""
    kubectl = str(pathlib.Path(sys.executable).with_name("kubectl"))
    rbac_dir = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "rbac"
    subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side", "--force-conflicts", "-f", str(rbac_dir)],
        check=True,
        capture_output=True,
    )
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": "roadie-sa", "user": {"token": token(kubeconfig, rbac.NAMESPACE, rbac.NAME)}}]
    config["contexts"][0]["context"]["user"] = "roadie-sa"
    limited = tmp_path / "roadie-sa.kubeconfig"
    limited.write_text(yaml.safe_dump(config))
    process = SecureOperator(limited, tmp_path / "limited.log", namespace)
    process.extra.append("--leader-elect")
    process.env = {"POD_NAME": "roadie-rbac-test", "POD_NAMESPACE": rbac.NAMESPACE}
    try:
        process.start()
        lease = wait_for(
            "the lease held",
            lambda: (
                (found := kube.get(Lease, leader.NAME, namespace=rbac.NAMESPACE)).spec.holderIdentity
                == "roadie-rbac-test"
                and found
            ),
        )
        wait_for(
            "a renewal",
            lambda: kube.get(Lease, leader.NAME, namespace=rbac.NAMESPACE).spec.renewTime != lease.spec.renewTime,
            10,
        )
        reader, stranger = accounts
        assert scrape(token(kubeconfig, namespace, reader))[0] == 200
        assert scrape(token(kubeconfig, namespace, stranger))[0] == 403
        process.stop()
        assert process.proc is not None and process.proc.returncode == 0
        assert not kube.get(Lease, leader.NAME, namespace=rbac.NAMESPACE).spec.holderIdentity  # released
        log = process.log.read_text()
        assert "Forbidden" not in log and " 403 " not in log, log[-3000:]
    finally:
        process.stop()
        with contextlib.suppress(ApiError):
            kube.delete(Lease, leader.NAME, namespace=rbac.NAMESPACE)
