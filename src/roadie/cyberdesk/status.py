"""A Cyberdesk's status, computed once per reconcile from what it observed (pure).

One setter per condition, each always setting its condition, so every status says where each
concern stands:

- `Provisioned`: the VM was made from its template; False with the reason a desktop cannot be
  made (`TemplateNotFound`, `TemplateInvalid`, `UnknownVariable`, `NotAVirtualMachine`,
  `UserDataNotFound`, `VMConflict`), which is also when the phase is `Failed`.
- `Ready`: the VMI runs (reason `Running`), or why not (the VMI's phase as the reason).
- `ExpiringSoon`: inside the warning window before the deadline.
- `TimedOut`: the timeout ran out and the VM was halted (then deleted).

The phases are listed in `roadie.cyberdesk.phases`.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from roadie.core import conditions, models
from roadie.cyberdesk import models as cd_models
from roadie.cyberdesk import phases

PROVISIONED = "Provisioned"
READY = "Ready"
EXPIRING = "ExpiringSoon"
TIMED_OUT = "TimedOut"

# reasons of the Provisioned condition besides the template's (roadie.cyberdesk.template)
CREATED = "VMCreated"
PROVISIONING = "Provisioning"
USER_DATA_NOT_FOUND = "UserDataNotFound"
VM_CONFLICT = "VMConflict"
VM_REJECTED = "VMRejected"

NOT_NEEDED_MESSAGE = (
    "Roadie serves cyberdesks.cyberdesk.io itself: this object starts nothing and may be deleted. "
    "It is accepted so that manifests written for the original operator apply unchanged."
)


@dataclasses.dataclass
class Observed:
    """What one reconcile saw; filled step by step, then turned into status once."""

    generation: int | None = None
    template: str | None = None
    vm_name: str | None = None
    vm_exists: bool = False
    vmi_phase: str | None = None
    ip_address: str | None = None
    node_name: str | None = None
    started_at: datetime.datetime | None = None
    expires_at: datetime.datetime | None = None
    halted_at: datetime.datetime | None = None
    in_warning_window: bool = False
    failure: tuple[str, str] | None = None  # (reason, message) that no retry will fix
    waiting: str | None = None  # why the VM is not there yet, when it is only a matter of time


def phase_of(seen: Observed) -> cd_models.Phase:
    if seen.halted_at is not None:
        return "Stopping" if seen.vm_exists else "TimedOut"
    if seen.failure is not None:
        return "Failed"
    if not seen.vm_exists:
        return "Pending"
    return phases.from_vmi(seen.vmi_phase)


def set_provisioned(conds: list[dict[str, Any]], seen: Observed, now: datetime.datetime) -> list[dict[str, Any]]:
    gen = seen.generation
    if seen.failure is not None:
        return conditions.set_condition(
            conds, PROVISIONED, conditions.FALSE, seen.failure[0], seen.failure[1], generation=gen, now=now
        )
    if seen.vm_exists or (seen.halted_at is not None and conditions.is_true(conds, PROVISIONED)):
        return conditions.set_condition(
            conds,
            PROVISIONED,
            conditions.TRUE,
            CREATED,
            f"VirtualMachine {seen.vm_name} made from template {seen.template}"
            if seen.template
            else f"VirtualMachine {seen.vm_name}",
            generation=gen,
            now=now,
        )
    return conditions.set_condition(
        conds,
        PROVISIONED,
        conditions.FALSE,
        PROVISIONING,
        seen.waiting or "creating the VirtualMachine",
        generation=gen,
        now=now,
    )


def set_ready(conds: list[dict[str, Any]], seen: Observed, phase: str, now: datetime.datetime) -> list[dict[str, Any]]:
    gen = seen.generation
    if phase == "Running":
        where = " on " + seen.node_name if seen.node_name else ""
        at = " at " + seen.ip_address if seen.ip_address else ""
        return conditions.set_condition(
            conds, READY, conditions.TRUE, "Running", f"the VM runs{where}{at}", generation=gen, now=now
        )
    if phase in phases.TIMED_OUT:
        reason, message = "TimedOut", "stopped: the timeout ran out"
    elif seen.failure is not None:
        reason, message = seen.failure
    elif seen.vmi_phase:
        reason, message = phase, f"the VirtualMachineInstance is {seen.vmi_phase}"
    else:
        reason, message = "Pending", "waiting for the VirtualMachineInstance"
    return conditions.set_condition(conds, READY, conditions.FALSE, reason, message, generation=gen, now=now)


def set_expiring(conds: list[dict[str, Any]], seen: Observed, now: datetime.datetime) -> list[dict[str, Any]]:
    gen = seen.generation
    if seen.expires_at is None or seen.halted_at is not None:
        return conditions.set_condition(
            conds, EXPIRING, conditions.FALSE, "NoDeadline", "no running deadline", generation=gen, now=now
        )
    when = f"the timeout ends at {models.timestamp(seen.expires_at)}"
    if seen.in_warning_window:
        return conditions.set_condition(conds, EXPIRING, conditions.TRUE, "TimeoutNear", when, generation=gen, now=now)
    return conditions.set_condition(conds, EXPIRING, conditions.FALSE, "TimeoutNotNear", when, generation=gen, now=now)


def set_timed_out(
    conds: list[dict[str, Any]], seen: Observed, timeout_ms: int, now: datetime.datetime
) -> list[dict[str, Any]]:
    gen = seen.generation
    if seen.halted_at is None:
        return conditions.set_condition(
            conds, TIMED_OUT, conditions.FALSE, "WithinTimeout", f"timeoutMs is {timeout_ms}", generation=gen, now=now
        )
    ran = "after running " if seen.started_at is not None else "without ever running, "
    message = f"stopped at {models.timestamp(seen.halted_at)} {ran}for timeoutMs={timeout_ms}"
    message += "; deleting the VM" if seen.vm_exists else "; the VM is deleted"
    return conditions.set_condition(
        conds, TIMED_OUT, conditions.TRUE, "TimeoutReached", message, generation=gen, now=now
    )


def compute(old: dict[str, Any], seen: Observed, timeout_ms: int, now: datetime.datetime) -> dict[str, Any]:
    """The whole status; writing it when it differs from `old` is the reconcile's one status write."""
    phase = phase_of(seen)
    conds = list(old.get("conditions") or [])
    conds = set_provisioned(conds, seen, now)
    conds = set_ready(conds, seen, phase, now)
    conds = set_expiring(conds, seen, now)
    conds = set_timed_out(conds, seen, timeout_ms, now)
    message = ""
    if phase != "Running":
        explaining = conditions.get(conds, TIMED_OUT if phase in phases.TIMED_OUT else READY)
        message = str((explaining or {}).get("message", ""))
    status: dict[str, Any] = {
        "phase": phase,
        "vmName": seen.vm_name,
        "vmiPhase": seen.vmi_phase,
        "ipAddress": seen.ip_address,
        "nodeName": seen.node_name,
        "startedAt": models.timestamp(seen.started_at) if seen.started_at else None,
        "expiresAt": models.timestamp(seen.expires_at) if seen.expires_at else None,
        "haltedAt": models.timestamp(seen.halted_at) if seen.halted_at else None,
        "timedOut": seen.halted_at is not None,
        "template": seen.template or old.get("template"),
        "message": message,
        "observedGeneration": seen.generation,
        "conditions": conds,
    }
    return status


def sink_status(status: dict[str, Any]) -> phases.SinkStatus:
    """The row's status for a computed status."""
    return phases.sink_status(status.get("phase"))


def first_started(old: dict[str, Any], vmi_phase: str | None, now: datetime.datetime) -> datetime.datetime | None:
    """`startedAt`: kept once set (a restarted VMI does not restart the clock), else now if the
    VMI runs."""
    kept = models.parse_timestamp(old.get("startedAt"))
    if kept is not None:
        return kept
    return now if vmi_phase == "Running" else None


def start_operator_status(generation: int | None) -> dict[str, Any]:
    """The whole status of a StartCyberdeskOperator: it does nothing, and says why."""
    return {"phase": "NotNeeded", "message": NOT_NEEDED_MESSAGE, "observedGeneration": generation}
