"""A PreviewEnvironment's phase and conditions, computed from what one reconcile observed (pure).

The seed defines no status; Roadie's is small. `Pending`: nothing is provisioned yet, or the
namespace of that name is still being deleted. `Creating`: the namespace and its objects are
applied, the Deployment is not available yet. `Updating`: it has served before and is rolling
to a new spec (or a Deployment deleted by hand is being put back). `Ready`: the Deployment is
available at the current spec, no pod of an older one left. `Failed`: it cannot be provisioned
without a user's change (the `Provisioned` condition says why, and who holds the name if that is
the cause). `Terminating`: deleted or expired, its namespace going.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from roadie.core import conditions, models

READY = "Ready"
PROVISIONED = "Provisioned"

# reasons of the Provisioned condition
APPLIED = "Applied"
PROVISIONING = "Provisioning"
NAME_TAKEN = "NamespaceConflict"
NAMESPACE_TERMINATING = "NamespaceTerminating"
CHILD_REJECTED = "ChildRejected"
INVALID_SPEC = "InvalidSpec"
DELETING = "Deleting"

LIVE_PHASES = ("Creating", "Updating", "Ready")


@dataclasses.dataclass
class Observed:
    """What one reconcile saw; filled step by step, then turned into status once."""

    generation: int | None = None
    expires_at: datetime.datetime | None = None
    namespace: str | None = None  # the namespace this object holds (made by Roadie for it)
    url: str | None = None
    image: str | None = None
    applied: bool = False
    available: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)
    failure: tuple[str, str] | None = None  # (reason, message) that no retry will fix
    waiting: tuple[str, str] | None = None  # (reason, message) of a wait that ends by itself
    terminating: bool = False


def phase_of(seen: Observed, served_before: bool) -> str:
    if seen.terminating:
        return "Terminating"
    if seen.failure:
        return "Failed"
    if seen.applied and seen.available:
        return "Ready"
    if seen.applied:
        return "Updating" if served_before else "Creating"
    return "Pending"


def _provisioned(seen: Observed) -> tuple[str, str, str]:
    if seen.terminating:
        return conditions.FALSE, DELETING, "deleting the namespace and everything in it"
    if seen.failure:
        return conditions.FALSE, *seen.failure
    if seen.waiting:
        return conditions.FALSE, *seen.waiting
    if seen.applied:
        return conditions.TRUE, APPLIED, f"namespace {seen.namespace} and its objects are as the spec says"
    return conditions.FALSE, PROVISIONING, "creating the namespace"


def _ready(seen: Observed, provisioned: tuple[str, str, str]) -> tuple[str, str, str]:
    if seen.applied and seen.available and not seen.terminating:
        return conditions.TRUE, "DeploymentAvailable", f"{seen.image} is serving at {seen.url}"
    if provisioned[0] == conditions.FALSE:
        return conditions.FALSE, provisioned[1], provisioned[2]
    detail = "; ".join(seen.problems)
    return (
        conditions.FALSE,
        "DeploymentUnavailable",
        f"waiting for {seen.image} to become available" + (f": {detail}" if detail else ""),
    )


def compute(old: dict[str, Any], seen: Observed, now: datetime.datetime) -> dict[str, Any]:
    conds = old.get("conditions") or []
    gen = seen.generation
    provisioned = _provisioned(seen)
    ready = _ready(seen, provisioned)
    conds = conditions.set_condition(conds, PROVISIONED, *provisioned, generation=gen, now=now)
    conds = conditions.set_condition(conds, READY, *ready, generation=gen, now=now)
    phase = phase_of(seen, served_before=bool(old.get("readyAt")))
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": gen,
        "conditions": conds,
        "namespace": seen.namespace,
        "message": "" if phase == "Ready" else ready[2],
    }
    status["url"] = seen.url  # None removes what no longer holds (merge patch)
    status["image"] = seen.image
    status["expiresAt"] = models.timestamp(seen.expires_at) if seen.expires_at else None
    ready_at = old.get("readyAt") or (models.timestamp(now) if phase == "Ready" else None)
    if ready_at:
        status["readyAt"] = ready_at
    return status


def first_ready(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True the one time an environment first serves: what `created_total` and the creation
    histogram count, so that a restart or a later dip in availability never counts it twice."""
    return not old.get("readyAt") and bool(new.get("readyAt"))


def is_live(status: dict[str, Any]) -> bool:
    return status.get("phase") in LIVE_PHASES
