"""The controller's own decisions without a cluster: when a desktop counts as started (its
instance's Running transition, or a warm VM's claim), what the instance says, what the sinks are
handed for a status, and that both kinds are served."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from roadie.cyberdesk import children, pool, reconcile, sink

T0 = datetime.datetime(2026, 3, 1, 9, 0, 0, tzinfo=datetime.UTC)


def vmi(phase: str, running_at: str | None = None) -> dict[str, Any]:
    stamps = [{"phase": "Pending", "phaseTransitionTimestamp": "2026-03-01T08:59:58.100000Z"}]
    if running_at:
        stamps.append({"phase": "Running", "phaseTransitionTimestamp": running_at})
    return {
        "metadata": {"name": "vm"},
        "status": {
            "phase": phase,
            "nodeName": "kwok-node-1",
            "interfaces": [{"name": "default", "ipAddress": "10.244.130.7"}],
            "phaseTransitionTimestamps": stamps,
        },
    }


def test_a_new_vm_starts_when_its_instance_entered_running_in_whole_seconds() -> None:
    vm = {"metadata": {"name": "vm", "annotations": {}}}
    at = reconcile.started(vm, vmi("Running", "2026-03-01T08:59:59.730000Z"), T0)
    assert at == datetime.datetime(2026, 3, 1, 8, 59, 59, tzinfo=datetime.UTC)


def test_a_claimed_warm_vm_starts_at_its_claim() -> None:
    vm = {"metadata": {"name": "vm", "annotations": {pool.CLAIMED_AT: "2026-03-01T09:00:00Z"}}}
    at = reconcile.started(vm, vmi("Running", "2026-03-01T08:50:00Z"), T0 + datetime.timedelta(seconds=1))
    assert at == T0, "the time a warm VM waited in the pool is not the desktop's"


def test_a_start_is_never_in_the_future() -> None:
    vm = {"metadata": {"name": "vm", "annotations": {}}}
    assert reconcile.started(vm, vmi("Running", "2026-03-01T09:00:05Z"), T0) == T0
    assert reconcile.started(vm, vmi("Running"), T0) == T0


def test_the_instance_gives_phase_address_and_node() -> None:
    found = vmi("Running", "2026-03-01T08:59:59Z")
    assert children.vmi_phase(found) == "Running"
    assert children.vmi_address(found) == "10.244.130.7"
    assert children.vmi_node(found) == "kwok-node-1"
    assert children.vmi_phase(None) is None and children.vmi_address(None) is None


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []
        self.events: list[str] = []

    def put(self, name: str, status: str) -> None:
        self.rows.append((name, status))

    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        self.events.append(event)

    def forget(self, name: str, namespace: str | None = None) -> None: ...

    async def start(self) -> None: ...

    async def close(self, grace: float = 5.0) -> None: ...


def published(phase: str, expiring: bool = False) -> Recorder:
    recorder = Recorder()
    reconcile.runtime.sinks = sink.Sinks([recorder])
    conditions = [{"type": "ExpiringSoon", "status": "True" if expiring else "False"}]
    body = {"metadata": {"name": "d", "namespace": "ns", "uid": "u"}}
    reconcile.publish(body, {"phase": phase, "conditions": conditions})
    reconcile.runtime.sinks = sink.Sinks()
    return recorder


def test_the_sinks_get_the_row_and_the_events_of_each_status() -> None:
    assert published("Scheduling").rows == [("d", "pending")] and published("Scheduling").events == []
    running = published("Running")
    assert running.rows == [("d", "running")] and running.events == ["ready"]
    assert published("Running", expiring=True).events == ["ready", "expiring"]
    assert published("Stopping").rows == [("d", "completed")] and published("Stopping").events == []
    assert published("TimedOut").events == ["stopped"]
    failed = published("Failed")
    assert failed.rows == [("d", "error")] and failed.events == ["stopped"]


def test_both_kinds_are_served() -> None:
    kinds = {c.api.kind for c in reconcile.CONTROLLERS}
    assert kinds == {"Cyberdesk", "StartCyberdeskOperator"}
    assert {s.kind for s in reconcile.controller.children} == {"VirtualMachine", "VirtualMachineInstance"}
