"""The API server's Pod Security admission agrees with the level each pod is built for.

A Workshop pod that claims `baseline` must be admitted where baseline is enforced (the seed's
rocker and Bioconductor images start as root, so it cannot be `restricted`) and refused where
restricted is; the `restricted` variant and a PreviewEnvironment's pod must be admitted under
restricted. Each pod template is created as a Pod with a server-side dry run, so admission runs
in full and nothing is stored (the local nodes would not run the images anyway).
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator
from typing import Any

import lightkube
import pytest
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from tests.cluster.conftest import wait_for

from roadie import settings
from roadie.preview import children as preview_children
from roadie.preview import models as preview_models
from roadie.workshop import children as workshop_children
from roadie.workshop import models as workshop_models

PARENT = {"apiVersion": "x.test/v1", "kind": "X", "metadata": {"name": "p", "namespace": "n", "uid": str(uuid.uuid4())}}


@pytest.fixture(scope="module")
def enforcing(kube: lightkube.Client) -> Iterator[dict[str, str]]:
    """One namespace per level, each enforcing it at the latest version of the Standards."""
    made = {}
    for level in ("baseline", "restricted"):
        name = f"t-pss-{level}-{uuid.uuid4().hex[:6]}"
        labels = {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "warn")}
        labels |= {"pod-security.kubernetes.io/enforce-version": "latest", "roadie.dev/test": "true"}
        kube.create(Namespace(metadata=ObjectMeta(name=name, labels=labels)))
        made[level] = name
    for name in made.values():
        wait_for("the default service account", functools.partial(kube.get, ServiceAccount, "default", namespace=name))
    yield made
    for name in made.values():
        with contextlib.suppress(ApiError):
            kube.delete(Namespace, name)


def as_pod(deployment: dict[str, Any], namespace: str) -> Any:
    template = deployment["spec"]["template"]
    name = f"{deployment['metadata']['name'][:40]}-{uuid.uuid4().hex[:5]}"
    return codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }
    )


def workshop_pod(level: str, namespace: str) -> Any:
    spec = workshop_models.WorkshopSpec(name="pss-check")
    session = workshop_children.sessions(spec)[0]
    return as_pod(workshop_children.deployment(PARENT, spec, session, 8787, pod_security=level), namespace)


def admitted(kube: lightkube.Client, pod: Any) -> str | None:
    """None if the API server would store the pod; otherwise its refusal."""
    try:
        kube.create(pod, dry_run=True)
    except ApiError as error:
        return f"{error.status.code}: {error.status.message}"
    return None


def test_the_default_workshop_pod_is_admitted_under_baseline(kube: lightkube.Client, enforcing: dict[str, str]) -> None:
    level = settings.WorkshopSettings().pod_security
    assert level == "baseline"
    assert admitted(kube, workshop_pod(level, enforcing["baseline"])) is None


def test_the_baseline_workshop_pod_is_refused_under_restricted(
    kube: lightkube.Client, enforcing: dict[str, str]
) -> None:
    refusal = admitted(kube, workshop_pod(workshop_children.BASELINE, enforcing["restricted"]))
    assert refusal is not None and refusal.startswith("403")
    assert 'violates PodSecurity "restricted:latest"' in refusal
    assert "runAsNonRoot" in refusal and "capabilities" in refusal, refusal


@pytest.mark.parametrize("where", ["restricted", "baseline"])
def test_the_restricted_workshop_pod_is_admitted_under_restricted(
    kube: lightkube.Client, enforcing: dict[str, str], where: str
) -> None:
    assert admitted(kube, workshop_pod(workshop_children.RESTRICTED, enforcing[where])) is None


def test_the_preview_pod_is_admitted_under_restricted(kube: lightkube.Client, enforcing: dict[str, str]) -> None:
    spec = preview_models.PreviewEnvironmentSpec(pr_number=1, branch_name="b", image="app", image_tag="v1")
    eff = preview_children.effective(spec, settings.PreviewSettings())
    assert admitted(kube, as_pod(preview_children.deployment(PARENT, spec, eff), enforcing["restricted"])) is None


def test_a_capability_beyond_baseline_is_refused_there(kube: lightkube.Client, enforcing: dict[str, str]) -> None:
    """The admission really checks: one capability more than the Standard allows is refused."""
    pod = workshop_pod(workshop_children.BASELINE, enforcing["baseline"])
    pod.spec.containers[0].securityContext.capabilities.add.append("NET_ADMIN")
    refusal = admitted(kube, pod)
    assert refusal is not None and 'violates PodSecurity "baseline:latest"' in refusal and "NET_ADMIN" in refusal
