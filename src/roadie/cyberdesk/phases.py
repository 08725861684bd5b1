"""What a Cyberdesk's phase is, from its VirtualMachineInstance's, and what the status sink says.

The Cyberdesk follows the VMI's lifecycle (KubeVirt's seven phases, same names) and adds three
phases of its own that KubeVirt cannot know about:

| phase | meaning | sink status |
|---|---|---|
| `Pending` | accepted; the VM is being made or its VMI is not scheduled yet | `pending` |
| `Scheduling`, `Scheduled` | KubeVirt is placing the VMI / has placed it, not running yet | `pending` |
| `Running` | the VMI runs; the timeout counts from the first time it did | `running` |
| `Succeeded` | the guest shut itself down before the timeout | `completed` |
| `Failed` | the VMI failed, or no VM can be made (the `Provisioned` condition says why) | `error` |
| `Unknown` | KubeVirt lost track of the VMI (its node is unreachable) | `error` |
| `Stopping` | the timeout ran out: the VM is halted, and will be deleted | `completed` |
| `TimedOut` | the timeout ran out and the VM is gone; the Cyberdesk stays as the record | `completed` |

The sink statuses are the original's (`pending`, `running`, `completed`, `error`); a timed-out
desktop is `completed`, as the original's row said once its VM had stopped.
"""

from __future__ import annotations

from typing import Literal

from roadie.cyberdesk import models

SinkStatus = Literal["pending", "running", "completed", "error"]

#: KubeVirt's VirtualMachineInstance phases (kubevirt.io/v1 VirtualMachineInstancePhase).
VMI_PHASES = ("Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed", "Unknown")
#: Phases with which nothing more will happen to the desktop by itself.
FINAL = ("TimedOut",)
#: Phases after the timeout ran out.
TIMED_OUT = ("Stopping", "TimedOut")

SINK_STATUS: dict[str, SinkStatus] = {
    "Pending": "pending",
    "Scheduling": "pending",
    "Scheduled": "pending",
    "Running": "running",
    "Succeeded": "completed",
    "Failed": "error",
    "Unknown": "error",
    "Stopping": "completed",
    "TimedOut": "completed",
}


def from_vmi(vmi_phase: str | None) -> models.Phase:
    """The Cyberdesk phase for a VMI phase. No VMI yet (or KubeVirt's empty initial phase, or
    `WaitingForSync` of a migration target) is `Pending`; a phase this version does not know is
    `Unknown`, so a newer KubeVirt cannot make a desktop look healthy by accident."""
    if not vmi_phase or vmi_phase == "WaitingForSync":
        return "Pending"
    if vmi_phase in VMI_PHASES:
        return vmi_phase  # type: ignore[return-value]
    return "Unknown"


def sink_status(phase: str | None) -> SinkStatus:
    """The row's status for a Cyberdesk phase (None, before any status: `pending`)."""
    if not phase:
        return "pending"
    return SINK_STATUS.get(phase, "error")


def sink_status_of_vmi(vmi_phase: str | None) -> SinkStatus:
    """The original's mapping, straight from a VMI phase."""
    return sink_status(from_vmi(vmi_phase))
