"""KubeVirt on the local cluster: its real CRDs are served, and the virt-controller stand-in moves
VirtualMachines and their instances through KubeVirt's phases.

Cyberdesk's tests trust a VirtualMachine with `runStrategy: Always` to get an instance that reaches
Running with an IP and a node, a halted one to lose it, and the failure annotation to fail it.
Each is checked here without the operator, so that a failing Cyberdesk test points at Cyberdesk.
"""

from __future__ import annotations

import time
from typing import Any

import lightkube
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType
from tests.cluster.conftest import gone, wait_for

from roadie.devcluster import kubevirt, vmlifecycle

VirtualMachine = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
VirtualMachineInstance = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)


def vm(name: str, namespace: str, annotations: dict[str, str] | None = None, **spec: Any) -> Any:
    template = {
        "metadata": {"labels": {"desktop": name}},
        "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "1Gi"}}}},
    }
    return VirtualMachine(
        metadata=ObjectMeta(name=name, namespace=namespace, annotations=annotations),
        spec={"template": template, **spec},
    )


def instance_phase(kube: lightkube.Client, name: str, namespace: str) -> str | None:
    try:
        found = kube.get(VirtualMachineInstance, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise
    return str((found.get("status") or {}).get("phase") or "")


def vm_status(kube: lightkube.Client, name: str, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = kube.get(VirtualMachine, name, namespace=namespace).get("status") or {}
    return status


def test_kubevirt_crds_are_served_with_their_own_schema(kube: lightkube.Client, namespace: str) -> None:
    for name in kubevirt.CRD_NAMES:
        crd = kube.get(CustomResourceDefinition, name)
        assert crd.spec.group == "kubevirt.io"
        assert "v1" in [version.name for version in crd.spec.versions if version.served]
    vmi_columns = {
        c.name
        for c in kube.get(CustomResourceDefinition, kubevirt.CRD_NAMES[1]).spec.versions[0].additionalPrinterColumns
    }
    assert {"Phase", "IP", "NodeName"} <= vmi_columns

    with pytest.raises(ApiError) as refused:  # KubeVirt's schema: a VM needs a template
        kube.create(
            VirtualMachine(metadata=ObjectMeta(name="bare", namespace=namespace), spec={"runStrategy": "Always"})
        )
    assert refused.value.status.code == 422
    assert "spec.template" in (refused.value.status.message or "")


def test_a_vm_that_should_run_gets_an_instance_running_with_an_ip_on_a_node(
    kube: lightkube.Client, namespace: str
) -> None:
    created = kube.create(vm("desk", namespace, runStrategy="Always"))
    seen: list[str] = []

    def running() -> bool:
        current = instance_phase(kube, "desk", namespace)
        if current and (not seen or seen[-1] != current):
            seen.append(current)
        return current == "Running"

    wait_for("the instance to run", running, timeout=30, interval=0.05)
    instance = kube.get(VirtualMachineInstance, "desk", namespace=namespace)
    status = instance["status"]
    assert [stamp["phase"] for stamp in status["phaseTransitionTimestamps"]] == [
        "Pending",
        "Scheduling",
        "Scheduled",
        "Running",
    ]
    assert seen[-1] == "Running" and set(seen) <= {"Pending", "Scheduling", "Scheduled", "Running"}
    assert status["interfaces"][0]["ipAddress"].startswith("10.244.")
    assert status["nodeName"] in {node.metadata.name for node in kube.list(Node)}
    meta = instance.metadata
    assert meta is not None and meta.labels is not None and meta.ownerReferences is not None
    assert meta.labels["desktop"] == "desk"
    assert meta.labels[vmlifecycle.NODE_LABEL] == status["nodeName"]
    (owner,) = meta.ownerReferences
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "VirtualMachine",
        "desk",
        created.metadata.uid,
        True,
    )
    wait_for("the VM to say so", lambda: vm_status(kube, "desk", namespace).get("printableStatus") == "Running")
    assert vm_status(kube, "desk", namespace)["ready"] is True
    assert vm_status(kube, "desk", namespace)["created"] is True


def test_halting_a_vm_stops_and_removes_its_instance(kube: lightkube.Client, namespace: str) -> None:
    slow = {vmlifecycle.DELAY_ANNOTATION: "1s"}  # each phase lasts a second: Succeeded is seen
    kube.create(vm("desk", namespace, slow, running=True))
    wait_for("the instance to run", lambda: instance_phase(kube, "desk", namespace) == "Running", timeout=30)

    kube.patch(
        VirtualMachine,
        "desk",
        {"spec": {"runStrategy": "Halted", "running": None}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )

    wait_for(
        "the instance to stop", lambda: instance_phase(kube, "desk", namespace) == "Succeeded", timeout=15, interval=0.1
    )
    wait_for(
        "the instance to go", gone(lambda: kube.get(VirtualMachineInstance, "desk", namespace=namespace)), timeout=15
    )
    wait_for("the VM to be stopped", lambda: vm_status(kube, "desk", namespace).get("printableStatus") == "Stopped")
    assert vm_status(kube, "desk", namespace)["ready"] is False
    time.sleep(1.0)
    assert instance_phase(kube, "desk", namespace) is None  # and no new one


def test_a_halted_vm_gets_no_instance(kube: lightkube.Client, namespace: str) -> None:
    kube.create(vm("idle", namespace, runStrategy="Halted"))

    wait_for("the VM to be stopped", lambda: vm_status(kube, "idle", namespace).get("printableStatus") == "Stopped")
    time.sleep(1.0)  # five phases' worth of the default delay
    assert instance_phase(kube, "idle", namespace) is None


def test_the_failure_annotation_fails_the_instance(kube: lightkube.Client, namespace: str) -> None:
    kube.create(vm("desk", namespace, runStrategy="Always"))
    wait_for("the instance to run", lambda: instance_phase(kube, "desk", namespace) == "Running", timeout=30)

    kube.patch(
        VirtualMachine,
        "desk",
        {"metadata": {"annotations": {vmlifecycle.FAIL_ANNOTATION: "true"}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )

    wait_for("the instance to fail", lambda: instance_phase(kube, "desk", namespace) == "Failed", timeout=15)
    wait_for(
        "the VM to show it", lambda: vm_status(kube, "desk", namespace).get("printableStatus") == "CrashLoopBackOff"
    )
    assert vm_status(kube, "desk", namespace)["ready"] is False
