"""The warm pool shrinks on a restart: an operator started with a bigger pool in two namespaces, then
restarted with a smaller one in one of them, deletes the surplus and empties the pool no longer
configured, keeps the rest, and leaves alone a VM labelled like a pool VM that it did not make.
Without this, the surplus VMs run forever with nothing owning them."""

from __future__ import annotations

import contextlib
import pathlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import lightkube
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from tests.cluster.conftest import OperatorProcess, instead_of, wait_for

from roadie.cyberdesk import default_template

VM = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
VMI = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances")
POOL_LABEL = "cyberdesk.io/pool"


@pytest.fixture
def pool_namespaces(kube: lightkube.Client) -> Iterator[tuple[str, str]]:
    names = (f"t-cd-shrink-{uuid.uuid4().hex[:6]}", f"t-cd-dropped-{uuid.uuid4().hex[:6]}")
    for name in names:
        kube.create(Namespace(metadata=ObjectMeta(name=name, labels={"roadie.dev/test": "true"})))
    yield names
    for name in names:
        with contextlib.suppress(ApiError):
            kube.delete(Namespace, name)


def pool_vms(kube: lightkube.Client, namespace: str) -> dict[str, dict[str, Any]]:
    """The pool VMs of the namespace not being deleted, by name."""
    found = kube.list(VM, namespace=namespace, labels={POOL_LABEL: default_template.NAME})
    vms = [vm.to_dict() for vm in found]
    return {vm["metadata"]["name"]: vm for vm in vms if not vm["metadata"].get("deletionTimestamp")}


def running(kube: lightkube.Client, namespace: str, name: str) -> bool:
    try:
        return (kube.get(VMI, name, namespace=namespace).to_dict().get("status") or {}).get("phase") == "Running"
    except ApiError:
        return False


def full(kube: lightkube.Client, namespace: str, size: int) -> Callable[[], bool]:
    return lambda: len(pool_vms(kube, namespace)) == size


def operator_with(
    kubeconfig: pathlib.Path, log: pathlib.Path, size: int, namespaces: tuple[str, ...]
) -> OperatorProcess:
    env = {"ROADIE_CYBERDESK_POOL_SIZE": str(size), "ROADIE_CYBERDESK_POOL_NAMESPACES": ",".join(namespaces)}
    return OperatorProcess(kubeconfig, log, ["--controllers", "cyberdesk"], env)


def decoy(kube: lightkube.Client, namespace: str, like: dict[str, Any]) -> str:
    """A VM labelled and pointed like a pool VM but made by hand: no Roadie label."""
    name = f"hand-made-{uuid.uuid4().hex[:6]}"
    meta = like["metadata"]
    spec = {**like["spec"], "runStrategy": "Halted"}
    spec["template"] = {**spec["template"], "metadata": {"labels": {POOL_LABEL: "x"}}}
    body: dict[str, Any] = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {POOL_LABEL: default_template.NAME},
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": spec,
    }
    kube.create(VM.from_dict(body))
    return name


def test_a_restart_with_a_smaller_pool_deletes_the_surplus_and_keeps_the_rest(
    kube: lightkube.Client,
    kubeconfig: pathlib.Path,
    operator: OperatorProcess,
    pool_namespaces: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    kept_ns, dropped_ns = pool_namespaces
    logs = tmp_path_factory.mktemp("cyberdesk-pool")
    big = operator_with(kubeconfig, logs / "big.log", 3, pool_namespaces)
    with instead_of(operator, big):
        big.start()
        for ns in pool_namespaces:
            wait_for(f"3 warm VMs in {ns}", full(kube, ns, 3), 60)
        before = pool_vms(kube, kept_ns)
        wait_for("the warm VMs running", lambda: all(running(kube, kept_ns, name) for name in before), 60)
        hand_made = decoy(kube, kept_ns, next(iter(before.values())))
        big.stop()

        small = operator_with(kubeconfig, logs / "small.log", 1, (kept_ns,))
        small.start()
        try:
            wait_for("the dropped namespace's pool emptied", lambda: pool_vms(kube, dropped_ns) == {}, 60)
            wait_for("the pool down to 1 (and the hand-made VM)", lambda: len(pool_vms(kube, kept_ns)) == 2, 60)
            time.sleep(3)  # a refill that would start or delete more has had its chance
            after = pool_vms(kube, kept_ns)
            assert hand_made in after, "a VM Roadie did not make was deleted"
            (kept,) = set(after) - {hand_made}
            assert kept in before, "the surplus was replaced, not trimmed"
            assert running(kube, kept_ns, kept)
            shrinks = [line for line in (logs / "small.log").read_text().splitlines() if "over its size" in line]
            assert len(shrinks) == 2, shrinks  # one line per pool shrunk, none per VM
        finally:
            small.stop()
