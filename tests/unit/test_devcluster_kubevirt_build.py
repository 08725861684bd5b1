"""The KubeVirt stand-ins' rules and build inputs, without a cluster or Go.

The virt-controller stand-in decides from a VM and its instance alone what KubeVirt would do next;
a wrong rule (an instance recreated after a halt, a failed one restarted while the annotation still
asks for failure) would show up in Cyberdesk's tests as a flaky desktop. The CRD generator's wrapper
module and cache are checked the way `test_binaries.py` checks the control plane's.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

import pytest

from roadie.devcluster import binaries, kubevirt, versions, vmlifecycle

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
NODES = ["kwok-node-0", "kwok-node-1", "kwok-node-2"]


def vm(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "desk", "namespace": "team", "uid": "vm-uid", "generation": 2, "annotations": annotations},
        "spec": {
            "template": {"metadata": {"labels": {"desktop": "desk"}}, "spec": {"domain": {"devices": {}}}},
            **spec,
        },
    }


def later(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def step_through(machine: dict[str, Any], until: str, *, delay: float = 0.2) -> dict[str, Any]:
    """Apply plans to an in-memory instance, time moving on by `delay`, until it reaches `until`."""
    instance: dict[str, Any] | None = None
    moment = T0
    for _ in range(20):
        plan = vmlifecycle.plan(machine, instance, moment, NODES)
        if plan.create is not None:
            instance = {**plan.create, "metadata": {**plan.create["metadata"], "uid": "vmi-uid"}}
        elif plan.vmi_status is not None and instance is not None:
            instance = {**instance, "status": plan.vmi_status}
        if vmlifecycle.phase(instance) == until:
            assert instance is not None
            return instance
        moment += datetime.timedelta(seconds=delay)
    raise AssertionError(f"never reached {until}; at {vmlifecycle.phase(instance)}")


@pytest.mark.parametrize(
    ("spec", "starts"),
    [
        ({"runStrategy": "Always"}, True),
        ({"runStrategy": "RerunOnFailure"}, True),
        ({"runStrategy": "Once"}, True),
        ({"runStrategy": "Halted"}, False),
        ({"runStrategy": "Manual"}, False),
        ({"running": True}, True),
        ({"running": False}, False),
    ],
)
def test_which_vms_get_an_instance(spec: dict[str, Any], starts: bool) -> None:
    plan = vmlifecycle.plan(vm(**spec), None, T0, NODES)

    assert (plan.create is not None) is starts


def test_manual_starts_on_a_start_request_and_serves_it() -> None:
    machine = vm(runStrategy="Manual")
    machine["status"] = {"stateChangeRequests": [{"action": "Start"}]}

    plan = vmlifecycle.plan(machine, None, T0, NODES)

    assert plan.create is not None
    assert plan.vm_status is not None and plan.vm_status["stateChangeRequests"] == []


def test_the_instance_is_the_template_owned_by_its_vm() -> None:
    instance = vmlifecycle.instance_for(vm(runStrategy="Always"), T0)

    assert instance["metadata"]["name"] == "desk" and instance["metadata"]["namespace"] == "team"
    assert instance["metadata"]["labels"] == {"desktop": "desk"}
    (owner,) = instance["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("VirtualMachine", "vm-uid", True)
    assert instance["spec"] == {"domain": {"devices": {}}}
    assert instance["status"]["phase"] == "Pending"


def test_an_instance_goes_through_kubevirts_phases_to_running_with_an_ip_and_node() -> None:
    running = step_through(vm(runStrategy="Always"), "Running")

    status = running["status"]
    assert [s["phase"] for s in status["phaseTransitionTimestamps"]] == [
        "Pending",
        "Scheduling",
        "Scheduled",
        "Running",
    ]
    assert status["nodeName"] in NODES
    assert status["interfaces"][0]["ipAddress"] == vmlifecycle.ip_for("vmi-uid")
    assert status["conditions"][0]["status"] == "True"
    final = vmlifecycle.plan(vm(runStrategy="Always"), running, later(60), NODES)
    assert (final.create, final.vmi_status, final.delete_vmi, final.requeue) == (None, None, False, None)


def test_a_phase_lasts_its_delay_and_the_controller_comes_back_then() -> None:
    machine = vm({vmlifecycle.DELAY_ANNOTATION: "2s"}, runStrategy="Always")
    pending = vmlifecycle.instance_for(machine, T0) | {
        "metadata": {"name": "desk", "uid": "i", "ownerReferences": [{"uid": "vm-uid"}]}
    }

    early = vmlifecycle.plan(machine, pending, later(0.5), NODES)
    due = vmlifecycle.plan(machine, pending, later(2.0), NODES)

    assert early.vmi_status is None and early.requeue == pytest.approx(1.5)
    assert due.vmi_status is not None and due.vmi_status["phase"] == "Scheduling"


def test_halting_succeeds_the_instance_then_deletes_it_and_creates_none() -> None:
    running = step_through(vm(runStrategy="Always"), "Running")
    halted = vm(runStrategy="Halted")

    stopping = vmlifecycle.plan(halted, running, later(10), NODES)
    assert stopping.vmi_status is not None and stopping.vmi_status["phase"] == "Succeeded"
    assert stopping.vm_status is not None and stopping.vm_status["printableStatus"] == "Stopped"
    stopped = {**running, "status": stopping.vmi_status}
    assert vmlifecycle.plan(halted, stopped, later(10.5), NODES).delete_vmi
    after = vmlifecycle.plan(halted, None, later(11), NODES)
    assert after.create is None
    assert after.vm_status is not None and (after.vm_status["printableStatus"], after.vm_status["ready"]) == (
        "Stopped",
        False,
    )


def test_the_failure_annotation_fails_the_instance_which_stays_failed_while_asked() -> None:
    failing = vm({vmlifecycle.FAIL_ANNOTATION: "true"}, runStrategy="Always")
    running = step_through(vm(runStrategy="Always"), "Running")

    plan = vmlifecycle.plan(failing, running, later(10), NODES)
    assert plan.vmi_status is not None and plan.vmi_status["phase"] == "Failed"
    failed = {**running, "status": plan.vmi_status}
    assert vmlifecycle.plan(failing, failed, later(20), NODES).delete_vmi is False
    assert vmlifecycle.printable(failing, failed) == "CrashLoopBackOff"
    assert vmlifecycle.plan(vm(runStrategy="Always"), failed, later(20), NODES).delete_vmi  # asked no more: restarted
    assert vmlifecycle.plan(vm(runStrategy="Once"), failed, later(20), NODES).delete_vmi is False


def test_an_instance_of_another_vm_of_that_name_is_left_to_the_garbage_collector() -> None:
    running = step_through(vm(runStrategy="Always"), "Running")
    successor = vm(runStrategy="Always")
    successor["metadata"]["uid"] = "another"

    plan = vmlifecycle.plan(successor, running, later(5), NODES)

    assert (plan.create, plan.vmi_status, plan.delete_vmi) == (None, None, False)
    assert plan.requeue is not None


def test_vm_status_keeps_the_ready_condition_time_while_it_holds() -> None:
    running = step_through(vm(runStrategy="Always"), "Running")
    first = vmlifecycle.vm_status(vm(runStrategy="Always"), running, T0)
    machine = vm(runStrategy="Always") | {"status": first}

    again = vmlifecycle.plan(machine, running, later(30), NODES)

    assert first["printableStatus"] == "Running" and first["ready"] is True and first["observedGeneration"] == 2
    assert again.vm_status is None  # nothing changed, nothing written


def test_durations_and_addresses() -> None:
    assert vmlifecycle.parse_duration("300ms") == pytest.approx(0.3)
    assert vmlifecycle.parse_duration("2s") == 2.0
    assert vmlifecycle.parse_duration("1m") == 60.0
    assert vmlifecycle.parse_duration("soon") is None
    assert vmlifecycle.ip_for("a") == vmlifecycle.ip_for("a")
    assert vmlifecycle.node_for("a", NODES) == vmlifecycle.node_for("a", list(reversed(NODES)))


KUBEVIRT_GO_MOD = """\
module kubevirt.io/kubevirt

go 1.24.0

require (
\tk8s.io/api v0.34.3
\tkubevirt.io/api v1.7.0
)

replace (
\tgithub.com/openshift/api => github.com/openshift/api v0.0.0-20210105115604-44119421ec6b

\tk8s.io/api => k8s.io/api v0.34.2
\tkubevirt.io/api => ./staging/src/kubevirt.io/api
\tkubevirt.io/client-go => ./staging/src/kubevirt.io/client-go
)
"""


def test_wrapper_module_repeats_kubevirts_replaces_with_staging_at_its_tag() -> None:
    text = kubevirt.wrapper_go_mod(KUBEVIRT_GO_MOD, "1.8.0")

    assert "require kubevirt.io/kubevirt v1.8.0" in text
    assert "\tk8s.io/api => k8s.io/api v0.34.2" in text
    assert "\tgithub.com/openshift/api => github.com/openshift/api v0.0.0-20210105115604-44119421ec6b" in text
    assert "\tkubevirt.io/api => kubevirt.io/api v1.8.0" in text
    assert "\tkubevirt.io/client-go => kubevirt.io/client-go v1.8.0" in text
    assert "./staging" not in text


def test_crds_come_from_the_variable_then_the_cache_then_one_build(tmp_path: pathlib.Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    builds: list[pathlib.Path] = []

    def build(target: pathlib.Path, pins: versions.Versions, report: binaries.Reporter) -> None:
        builds.append(target)
        target.mkdir(parents=True)
        (target / kubevirt.CRDS_FILE).write_text("---\n")

    first = kubevirt.resolve(env=env, build=build, report=lambda _: None)
    second = kubevirt.resolve(env=env, build=build, report=lambda _: None)

    assert (
        first
        == second
        == tmp_path / "cache" / "roadie" / "kubevirt" / f"kubevirt-{versions.PINNED.kubevirt}" / "crds.yaml"
    )
    assert len(builds) == 1
    own = tmp_path / "mine.yaml"
    own.write_text("---\n")
    assert kubevirt.resolve(env={**env, kubevirt.ENV_CRDS: str(own)}, build=build) == own
    with pytest.raises(binaries.BinariesError):
        kubevirt.resolve(env={**env, kubevirt.ENV_CRDS: str(tmp_path / "absent.yaml")}, build=build)


def test_loaded_crds_lose_gos_zero_valued_fields() -> None:
    text = (
        "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: a.b\n  creationTimestamp: null\nspec: {}\nstatus:\n  conditions: null\n"
    )

    (crd,) = kubevirt.load_text(text)

    assert crd == {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "a.b"},
        "spec": {},
    }
