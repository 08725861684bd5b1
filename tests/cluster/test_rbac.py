"""The generated RBAC is enough, and no more: the operator, run as its ServiceAccount with only
deploy/rbac/roadie.yaml granted and deploy/policy/ in force, provisions a Workshop and a
PreviewEnvironment to Ready and takes the PreviewEnvironment's namespace down again. A missing
verb shows here as a 403 in the operator's log and an object that never gets there; a verb too
many, as a SubjectAccessReview that answers yes."""

from __future__ import annotations

import contextlib
import pathlib
import random
import subprocess
import sys
from typing import Any

import lightkube
import pytest
import yaml
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.authorization_v1 import ResourceAttributes, SubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SubjectAccessReview
from lightkube.resources.core_v1 import Namespace
from tests.cluster import workshops
from tests.cluster.conftest import OperatorProcess, gone, wait_for

from roadie import rbac

ROOT = pathlib.Path(__file__).resolve().parents[2]
PreviewEnvironment = create_namespaced_resource("devops.orima.com", "v1", "PreviewEnvironment", "previewenvironments")


def _kubectl(kubeconfig: pathlib.Path, *args: str, check: bool = True) -> str:
    kubectl = str(pathlib.Path(sys.executable).with_name("kubectl"))
    return subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", *args], check=check, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource", "expected"),
    [
        ("delete", "", "nodes", "", False),
        ("update", "orchestra.io", "workshops", "finalizers", True),
        ("update", "devops.orima.com", "previewenvironments", "finalizers", True),
        ("update", "orchestra.io", "workshops", "status", False),
        ("patch", "orchestra.io", "workshops", "status", True),
        ("update", "apps", "deployments", "", False),
        ("patch", "", "secrets", "", False),
        ("get", "", "configmaps", "", False),
        ("create", "events.k8s.io", "events", "", False),
    ],
)
def test_the_account_has_exactly_the_generated_rights(
    kube: lightkube.Client, kubeconfig: pathlib.Path, verb: str, group: str, resource: str, subresource: str,
    expected: bool,
) -> None:  # fmt: skip
    _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "deploy" / "rbac"))
    review = SubjectAccessReview(
        spec=SubjectAccessReviewSpec(
            user=rbac.USERNAME,
            groups=["system:serviceaccounts", f"system:serviceaccounts:{rbac.NAMESPACE}", "system:authenticated"],
            resourceAttributes=ResourceAttributes(
                verb=verb, group=group, resource=resource, subresource=subresource, namespace="anywhere"
            ),
        )
    )
    answer = kube.create(review).status
    assert answer is not None and answer.allowed is expected, f"{verb} {resource}/{subresource}: {answer}"


def test_operator_runs_with_only_its_generated_rbac(
    kube: lightkube.Client,
    kubeconfig: pathlib.Path,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: pathlib.Path,
) -> None:
    for folder in ("rbac", "policy"):
        _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "deploy" / folder))
    token = _kubectl(kubeconfig, "create", "token", rbac.NAME, "-n", rbac.NAMESPACE, "--duration=1h").strip()
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": "roadie-sa", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "roadie-sa"
    limited_config = tmp_path / "roadie-sa.kubeconfig"
    limited_config.write_text(yaml.safe_dump(config))
    answer = _kubectl(limited_config, "auth", "can-i", "delete", "nodes", check=False)
    assert answer.strip() == "no", "the account must not be an admin"

    pr = random.randint(100000, 999999)
    preview = {
        "apiVersion": "devops.orima.com/v1",
        "kind": "PreviewEnvironment",
        "metadata": {"name": "least", "namespace": namespace},
        "spec": {"pr_number": pr, "branch_name": "feature/rbac", "image": "registry.invalid/app", "image_tag": "v1"},
    }
    operator.stop()
    limited = OperatorProcess(limited_config, tmp_path / "limited.log", ["--controllers", "workshop,preview"])
    try:
        limited.start()
        workshops.create(kube, workshops.manifest(namespace, "least", participants=2, ingress={"host": "least.test"}))
        kube.create(codecs.from_dict(preview))
        wait_for("the Workshop Ready", lambda: workshops.phase(kube, namespace, "least") == "Ready", 60)
        wait_for("the preview Ready", lambda: _phase(kube, namespace) == "Ready", 60)
        # its namespace is deleted by the operator's account, which the policy allows for Roadie's
        kube.delete(PreviewEnvironment, "least", namespace=namespace)
        wait_for("the preview gone", gone(lambda: kube.get(PreviewEnvironment, "least", namespace=namespace)), 90)
        assert _terminating_or_gone(kube, f"preview-pr-{pr}")
        log = limited.log.read_text()
        assert " 403 " not in log and "Forbidden" not in log, log[-3000:]
    finally:
        limited.stop()
        with contextlib.suppress(ApiError):
            kube.delete(PreviewEnvironment, "least", namespace=namespace)
        operator.start()


def _phase(kube: lightkube.Client, namespace: str) -> str | None:
    found: Any = kube.get(PreviewEnvironment, "least", namespace=namespace).status or {}
    return found.get("phase")


def _terminating_or_gone(kube: lightkube.Client, name: str) -> bool:
    try:
        return kube.get(Namespace, name).metadata.deletionTimestamp is not None
    except ApiError as error:
        return error.status.code == 404
