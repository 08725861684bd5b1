"""The VMI phase → Cyberdesk phase → row status mapping: the original's table (Pending,
Scheduling, Scheduled → pending; Running → running; Succeeded → completed; Failed, Unknown →
error), a timed-out desktop `completed`, and a phase KubeVirt may add later never read as healthy."""

from __future__ import annotations

from typing import get_args

import pytest

from roadie.cyberdesk import models, phases


@pytest.mark.parametrize(
    ("vmi", "phase", "row"),
    [
        ("Pending", "Pending", "pending"),
        ("Scheduling", "Scheduling", "pending"),
        ("Scheduled", "Scheduled", "pending"),
        ("Running", "Running", "running"),
        ("Succeeded", "Succeeded", "completed"),
        ("Failed", "Failed", "error"),
        ("Unknown", "Unknown", "error"),
        (None, "Pending", "pending"),
        ("", "Pending", "pending"),
        ("WaitingForSync", "Pending", "pending"),
        ("Hibernating", "Unknown", "error"),
    ],
)
def test_vmi_phase_to_cyberdesk_phase_and_row(vmi: str | None, phase: str, row: str) -> None:
    assert phases.from_vmi(vmi) == phase
    assert phases.sink_status(phase) == row
    assert phases.sink_status_of_vmi(vmi) == row


def test_a_timed_out_desktop_is_completed() -> None:
    assert phases.sink_status("Stopping") == "completed"
    assert phases.sink_status("TimedOut") == "completed"


def test_every_phase_of_the_api_has_a_row_status() -> None:
    assert set(phases.SINK_STATUS) == set(get_args(models.Phase))
    assert set(phases.SINK_STATUS.values()) == {"pending", "running", "completed", "error"}
    assert phases.sink_status(None) == "pending"
