"""A Cyberdesk's status computed without a cluster: each phase from what a reconcile saw, the four
conditions always set (and their transition times kept when nothing changed, so a steady desktop
is not written), the clock started once, and the row status a timed-out desktop gets."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from roadie.core import conditions
from roadie.cyberdesk import status

NOW = datetime.datetime(2026, 3, 1, 9, 0, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=1)


def _seen(**fields: Any) -> status.Observed:
    base: dict[str, Any] = {"generation": 1, "vm_name": "cyberdesk-d", "template": "cyberdesk-vm-template"}
    return status.Observed(**(base | fields))


def _cond(new: dict[str, Any], type_: str) -> dict[str, Any]:
    found = conditions.get(new["conditions"], type_)
    assert found is not None, f"{type_} missing"
    return found


@pytest.mark.parametrize(
    ("seen", "phase", "row"),
    [
        (_seen(), "Pending", "pending"),
        (_seen(vm_exists=True), "Pending", "pending"),
        (_seen(vm_exists=True, vmi_phase="Scheduling"), "Scheduling", "pending"),
        (_seen(vm_exists=True, vmi_phase="Running", started_at=NOW), "Running", "running"),
        (_seen(vm_exists=True, vmi_phase="Succeeded"), "Succeeded", "completed"),
        (_seen(vm_exists=True, vmi_phase="Failed"), "Failed", "error"),
        (_seen(failure=("UnknownVariable", "the template uses unknown variable(s) ${x}")), "Failed", "error"),
        (_seen(vm_exists=True, vmi_phase="Running", halted_at=NOW), "Stopping", "completed"),
        (_seen(vm_exists=False, halted_at=NOW), "TimedOut", "completed"),
    ],
)
def test_phase_and_row_from_what_was_seen(seen: status.Observed, phase: str, row: str) -> None:
    new = status.compute({}, seen, 60_000, NOW)
    assert new["phase"] == phase
    assert status.sink_status(new) == row
    assert {c["type"] for c in new["conditions"]} == {"Provisioned", "Ready", "ExpiringSoon", "TimedOut"}


def test_a_template_failure_is_named_in_provisioned_ready_and_message() -> None:
    failure = ("UnknownVariable", "the template uses unknown variable(s) ${passwd}")
    new = status.compute({}, _seen(failure=failure), 60_000, NOW)
    provisioned = _cond(new, "Provisioned")
    assert (provisioned["status"], provisioned["reason"]) == ("False", "UnknownVariable")
    assert "${passwd}" in _cond(new, "Ready")["message"] and "${passwd}" in new["message"]


def test_running_is_ready_with_node_and_ip() -> None:
    seen = _seen(vm_exists=True, vmi_phase="Running", ip_address="10.0.0.7", node_name="node-1", started_at=NOW)
    new = status.compute({}, seen, 60_000, NOW)
    ready = _cond(new, "Ready")
    assert ready["status"] == "True" and "node-1" in ready["message"] and "10.0.0.7" in ready["message"]
    assert new["startedAt"] == "2026-03-01T09:00:00Z" and new["message"] == ""
    assert _cond(new, "Provisioned")["status"] == "True"


def test_a_steady_desktop_keeps_its_transition_times() -> None:
    seen = _seen(vm_exists=True, vmi_phase="Running", started_at=NOW, expires_at=NOW + datetime.timedelta(hours=1))
    first = status.compute({}, seen, 3_600_000, NOW)
    again = status.compute(first, seen, 3_600_000, LATER)
    assert again == first


def test_the_warning_window_and_the_timeout_conditions() -> None:
    expires = NOW + datetime.timedelta(minutes=3)
    seen = _seen(vm_exists=True, vmi_phase="Running", started_at=NOW, expires_at=expires, in_warning_window=True)
    warned = status.compute({}, seen, 180_000, NOW)
    assert _cond(warned, "ExpiringSoon")["status"] == "True"
    assert "2026-03-01T09:03:00Z" in _cond(warned, "ExpiringSoon")["message"]
    assert _cond(warned, "TimedOut")["status"] == "False" and warned["timedOut"] is False
    stopped = status.compute(warned, _seen(vm_exists=True, started_at=NOW, halted_at=expires), 180_000, expires)
    assert stopped["phase"] == "Stopping" and stopped["timedOut"] is True
    assert _cond(stopped, "TimedOut")["status"] == "True" and _cond(stopped, "ExpiringSoon")["status"] == "False"
    assert _cond(stopped, "Ready")["reason"] == "TimedOut"
    assert stopped["haltedAt"] == "2026-03-01T09:03:00Z" and "timeoutMs=180000" in stopped["message"]
    gone = status.compute(stopped, _seen(vm_exists=False, started_at=NOW, halted_at=expires), 180_000, LATER)
    assert gone["phase"] == "TimedOut" and "deleted" in gone["message"]
    assert _cond(gone, "Provisioned")["status"] == "True"  # it was made; the timeout removed it


def test_the_clock_starts_once() -> None:
    assert status.first_started({}, "Scheduled", NOW) is None
    assert status.first_started({}, "Running", NOW) == NOW
    kept = {"startedAt": "2026-03-01T08:00:00Z"}
    assert status.first_started(kept, "Running", NOW) == NOW - datetime.timedelta(hours=1)
    assert status.first_started(kept, "Failed", NOW) == NOW - datetime.timedelta(hours=1)


def test_start_cyberdesk_operator_says_it_does_nothing() -> None:
    new = status.start_operator_status(3)
    assert new["phase"] == "NotNeeded" and "serves cyberdesks.cyberdesk.io itself" in new["message"]
    assert new["observedGeneration"] == 3
