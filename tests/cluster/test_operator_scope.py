"""`roadie run --namespace NS` watches only NS: a Workshop elsewhere is left alone until an
operator whose scope covers it comes along."""

from __future__ import annotations

import pathlib
import time
import uuid
from collections.abc import Iterator

import lightkube
import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from tests.cluster import workshops
from tests.cluster.conftest import OperatorProcess, wait_for


@pytest.fixture
def other_namespace(kube: lightkube.Client) -> Iterator[str]:
    name = f"t-elsewhere-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kube.delete(Namespace, name)


def test_a_namespaced_operator_leaves_other_namespaces_alone(
    kube: lightkube.Client,
    kubeconfig: pathlib.Path,
    namespace: str,
    other_namespace: str,
    operator: OperatorProcess,
    tmp_path: pathlib.Path,
) -> None:
    operator.stop()
    scoped = OperatorProcess(kubeconfig, tmp_path / "scoped.log", ["--controllers", "workshop", "-n", namespace])
    try:
        scoped.start()
        workshops.create(kube, workshops.manifest(namespace, "inside"))
        workshops.create(kube, workshops.manifest(other_namespace, "outside"))
        wait_for("the workshop in scope Ready", lambda: workshops.phase(kube, namespace, "inside") == "Ready", 60)
        time.sleep(3)  # long enough for a cluster-wide operator to have acted (it takes under a second)
        assert workshops.get(kube, other_namespace, "outside").status is None
    finally:
        scoped.stop()
        operator.start()
    wait_for(
        "the cluster-wide operator picks it up",
        lambda: workshops.phase(kube, other_namespace, "outside") == "Ready",
        60,
    )
