"""Status conditions in the Kubernetes shape (metav1.Condition), with one setter for all kinds.

`lastTransitionTime` moves only when `status` changes, as every Kubernetes controller does, so a
reconcile that finds nothing new writes nothing new.
"""

from __future__ import annotations

import datetime
from typing import Any

from roadie.core import models

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """Return a new list with the condition `type_` set; others are kept as they are."""
    existing = {c.get("type"): c for c in conditions or []}
    previous = existing.get(type_)
    moment = models.timestamp(now or models.now())
    if previous and previous.get("status") == status and previous.get("lastTransitionTime"):
        moment = previous["lastTransitionTime"]
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": moment,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    result = [c for c in conditions or [] if c.get("type") != type_]
    result.append(condition)
    return sorted(result, key=lambda c: str(c.get("type")))


def get(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]] | None, type_: str) -> bool:
    found = get(conditions, type_)
    return bool(found and found.get("status") == TRUE)
