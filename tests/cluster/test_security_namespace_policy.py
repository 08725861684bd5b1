"""The ValidatingAdmissionPolicy in deploy/policy/ keeps the operator's account to the namespaces
Roadie made.

RBAC lets the operator delete namespaces (a PreviewEnvironment's goes with it) but cannot say
which: a stolen token could delete `cert-manager` or a team's namespace. With the policy installed, the API server
refuses the account every namespace write unless the namespace carries Roadie's labels. Each
request here impersonates the operator's ServiceAccount and is a server-side dry run
(`dryRun=All`), so nothing is deleted even if the policy failed.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

import lightkube
import pytest
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from tests.cluster.conftest import wait_for

from roadie import rbac
from roadie.core import labels
from roadie.preview import children as preview_children

ROADIE_LABELS = {labels.MANAGED_BY: labels.MANAGER, preview_children.OWNER_UID: str(uuid.uuid4())}


def kubectl(
    kubeconfig: pathlib.Path, *args: str, as_operator: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl, impersonating the operator's ServiceAccount unless told otherwise."""
    binary = str(pathlib.Path(sys.executable).with_name("kubectl"))
    who = [f"--as={rbac.USERNAME}"] if as_operator else []
    return subprocess.run(
        [binary, f"--kubeconfig={kubeconfig}", *who, *args], input=stdin, capture_output=True, text=True, check=False
    )


def refused_by_policy(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and f"ValidatingAdmissionPolicy '{rbac.POLICY}'" in result.stderr


@pytest.fixture(scope="module")
def bystander(kube: lightkube.Client) -> Iterator[str]:
    """A namespace someone else made: the kind a stolen operator token must not delete."""
    name = f"t-bystander-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name, labels={"roadie.dev/test": "true"})))
    yield name
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


@pytest.fixture(scope="module")
def policy(kube: lightkube.Client, kubeconfig: pathlib.Path, bystander: str) -> None:
    """The operator's RBAC and the policy, installed as `roadie install` would, and in force."""
    for doc in (*rbac.manifests(), *rbac.policy_manifests()):
        kube.apply(codecs.from_dict(doc), field_manager="roadie-tests", force=True)
    wait_for(
        "the policy to be in force",
        lambda: refused_by_policy(kubectl(kubeconfig, "delete", "namespace", bystander, "--dry-run=server")),
        timeout=30,
    )


@pytest.fixture
def roadies_namespace(kube: lightkube.Client) -> Iterator[str]:
    name = f"t-roadie-made-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name, labels={**ROADIE_LABELS, "roadie.dev/test": "true"})))
    yield name
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


@pytest.mark.usefixtures("policy")
def test_rbac_alone_would_let_the_operator_delete_any_namespace(kubeconfig: pathlib.Path) -> None:
    answer = kubectl(kubeconfig, "auth", "can-i", "delete", "namespaces/default")
    assert answer.stdout.strip() == "yes", "so that the refusals below come from the policy, not from RBAC"


@pytest.mark.usefixtures("policy")
def test_the_operator_cannot_delete_default(kube: lightkube.Client, kubeconfig: pathlib.Path) -> None:
    """The API server's NamespaceLifecycle plugin already keeps `default`, `kube-system` and
    `kube-public` from everyone, before the policy is asked; the policy covers every other one."""
    result = kubectl(kubeconfig, "delete", "namespace", "default", "--dry-run=server")
    assert result.returncode != 0 and "Forbidden" in result.stderr, result.stderr
    assert kube.get(Namespace, "default").metadata.deletionTimestamp is None


@pytest.mark.usefixtures("policy")
@pytest.mark.parametrize("name", ["kube-node-lease", rbac.NAMESPACE])
def test_the_policy_refuses_deleting_system_namespaces(kubeconfig: pathlib.Path, name: str) -> None:
    result = kubectl(kubeconfig, "delete", "namespace", name, "--dry-run=server")
    assert refused_by_policy(result), result.stderr
    assert f"Roadie may delete only namespaces it made (labelled {labels.MANAGED_BY}" in result.stderr


@pytest.mark.usefixtures("policy")
def test_the_operator_cannot_delete_a_namespace_someone_else_made(kubeconfig: pathlib.Path, bystander: str) -> None:
    assert refused_by_policy(kubectl(kubeconfig, "delete", "namespace", bystander, "--dry-run=server"))


@pytest.mark.usefixtures("policy")
def test_the_operator_may_delete_a_namespace_roadie_labelled(
    kube: lightkube.Client, kubeconfig: pathlib.Path, roadies_namespace: str
) -> None:
    result = kubectl(kubeconfig, "delete", "namespace", roadies_namespace, "--dry-run=server")
    assert result.returncode == 0, result.stderr
    assert kube.get(Namespace, roadies_namespace).metadata.deletionTimestamp is None, "a dry run deletes nothing"


@pytest.mark.usefixtures("policy")
def test_the_operator_cannot_label_a_namespace_to_make_it_deletable(kubeconfig: pathlib.Path, bystander: str) -> None:
    marks = [f"{key}={value}" for key, value in ROADIE_LABELS.items()]
    result = kubectl(kubeconfig, "label", "namespace", bystander, *marks, "--dry-run=server")
    assert refused_by_policy(result), result.stderr
    assert "Roadie may change only namespaces it made" in result.stderr


@pytest.mark.usefixtures("policy")
def test_the_operator_may_create_only_namespaces_it_labels(kubeconfig: pathlib.Path) -> None:
    name = f"t-policy-create-{uuid.uuid4().hex[:6]}"
    bare = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    labelled = {**bare, "metadata": {"name": name, "labels": ROADIE_LABELS}}
    refused = kubectl(kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(bare))
    assert refused_by_policy(refused), refused.stderr
    assert "Roadie may create only namespaces it made" in refused.stderr
    allowed = kubectl(kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(labelled))
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.usefixtures("policy")
def test_everyone_else_is_left_alone(kubeconfig: pathlib.Path, bystander: str) -> None:
    result = kubectl(kubeconfig, "delete", "namespace", bystander, "--dry-run=server", as_operator=False)
    assert result.returncode == 0, result.stderr
