"""A Workshop's phase and conditions, computed from what the reconcile observed (pure).

Phases are the seed's. `Ready`: every session is available. `Running`: the workshop has been
provisioned and is serving, but not every session is available right now (one is restarting or
being put back); it returns to `Ready` by itself. `Creating` waits for children, `Failed` means
it cannot be provisioned (the condition says why), `Terminating` means it expired or is being
deleted.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from roadie.core import conditions, models

READY = "Ready"
PROVISIONED = "Provisioned"
EXPIRING = "ExpiringSoon"


@dataclasses.dataclass
class Observed:
    """What one reconcile saw; filled step by step, then turned into status once."""

    generation: int | None = None
    created_at: datetime.datetime | None = None
    expires_at: datetime.datetime | None = None
    applied: bool = False
    sessions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    failure: tuple[str, str] | None = None  # (reason, message) that no retry will fix
    deadline_passed: bool = False
    terminating: bool = False
    in_warning_window: bool = False
    url: str | None = None
    credentials_secret: str | None = None


def compute(old: dict[str, Any], seen: Observed, now: datetime.datetime) -> dict[str, Any]:
    conds = old.get("conditions") or []
    gen = seen.generation
    ready_count = sum(1 for s in seen.sessions if s.get("ready"))
    total = len(seen.sessions)
    all_ready = seen.applied and total > 0 and ready_count == total
    provisioned = conditions.is_true(conds, PROVISIONED) or all_ready

    if all_ready or provisioned:
        conds = conditions.set_condition(
            conds,
            PROVISIONED,
            "True",
            "SessionsAvailable",
            f"all {total} session(s) became available",
            generation=gen,
            now=now,
        )
    elif seen.failure:
        conds = conditions.set_condition(
            conds, PROVISIONED, "False", seen.failure[0], seen.failure[1], generation=gen, now=now
        )
    elif seen.deadline_passed:
        conds = conditions.set_condition(
            conds,
            PROVISIONED,
            "False",
            "ProvisioningDeadlineExceeded",
            "not available before the provisioning deadline: " + ("; ".join(seen.problems) or "no cause seen"),
            generation=gen,
            now=now,
        )
    else:
        conds = conditions.set_condition(
            conds,
            PROVISIONED,
            "False",
            "Provisioning",
            "; ".join(seen.problems) or "creating the sessions",
            generation=gen,
            now=now,
        )

    if all_ready:
        conds = conditions.set_condition(
            conds,
            READY,
            "True",
            "SessionsAvailable",
            f"{ready_count}/{total} session(s) available",
            generation=gen,
            now=now,
        )
    else:
        reason = seen.failure[0] if seen.failure else "SessionsUnavailable"
        message = (
            seen.failure[1]
            if seen.failure
            else (
                f"{ready_count}/{total} session(s) available"
                + (": " + "; ".join(seen.problems) if seen.problems else "")
            )
        )
        conds = conditions.set_condition(conds, READY, "False", reason, message, generation=gen, now=now)

    if seen.expires_at is not None and not seen.terminating:  # terminating: left as it was
        if seen.in_warning_window:
            conds = conditions.set_condition(
                conds,
                EXPIRING,
                "True",
                "ExpiryNear",
                f"expires at {models.timestamp(seen.expires_at)}",
                generation=gen,
                now=now,
            )
        else:
            conds = conditions.set_condition(
                conds,
                EXPIRING,
                "False",
                "ExpiryNotNear",
                f"expires at {models.timestamp(seen.expires_at)}",
                generation=gen,
                now=now,
            )

    if seen.terminating:
        phase = "Terminating"
    elif seen.failure or (seen.deadline_passed and not provisioned):
        phase = "Failed"
    elif all_ready:
        phase = "Ready"
    elif provisioned and ready_count > 0:
        phase = "Running"
    elif seen.applied:
        phase = "Creating"
    else:
        phase = "Pending"

    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": gen,
        "conditions": conds,
        "sessions": seen.sessions,
        "readySessions": ready_count,
        "message": conditions.get(conds, READY)["message"] if phase != "Ready" else "",  # type: ignore[index]
    }
    if seen.created_at:
        status["createdAt"] = models.timestamp(seen.created_at)
    if seen.expires_at:
        status["expiresAt"] = models.timestamp(seen.expires_at)
    if seen.url is not None:
        status["url"] = seen.url
    if seen.credentials_secret is not None:
        status["credentialsSecret"] = seen.credentials_secret
    return status
