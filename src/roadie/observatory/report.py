"""What one reconcile changed, as the events, metrics and traces report it (pure): which attempts
started, which ended and how, which tasks are to be retried, which ended for good, and whether the
workflow ended.

Read from the difference between the status the operator wrote last and the one it writes now
(plus the decision's starts), never from memory of earlier reconciles, so an operator restarted at
any moment neither misses a transition nor reports one twice, as long as the write succeeded.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from roadie.core import models
from roadie.observatory import children, dag


@dataclasses.dataclass(frozen=True)
class Started:
    task: str
    attempt: int
    pod: str
    ready_at: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Ended:
    """One attempt that ended: its pod's life, its outcome."""

    task: str
    attempt: int
    pod: str
    outcome: str  # Succeeded or Failed
    started: datetime.datetime | None
    finished: datetime.datetime
    reason: str = ""
    exit_code: int | None = None


@dataclasses.dataclass(frozen=True)
class TaskEnd:
    task: str
    phase: str  # Succeeded, Failed or Skipped
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Retry:
    task: str
    failed_attempt: int
    message: str


@dataclasses.dataclass
class Changes:
    started: list[Started] = dataclasses.field(default_factory=list)
    ended: list[Ended] = dataclasses.field(default_factory=list)
    retries: list[Retry] = dataclasses.field(default_factory=list)
    task_ends: list[TaskEnd] = dataclasses.field(default_factory=list)
    #: the workflow's phase when this reconcile ended it (Succeeded or Failed), else None
    workflow_end: str | None = None


def _entries(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {t.get("name", ""): t for t in (status or {}).get("tasks") or []}


def _attempt_closed(entry: Mapping[str, Any], attempt: int) -> bool:
    """Did this status entry already record `attempt` as over (a verdict, or a retry waiting)?"""
    if int(entry.get("attempts") or 0) != attempt:
        return int(entry.get("attempts") or 0) > attempt
    return entry.get("phase") in dag.FINAL or bool(entry.get("retryTime"))


def changes(
    workflow: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    decision: dag.Decision,
    states: Mapping[str, dag.TaskState],
    *,
    now: datetime.datetime,
) -> Changes:
    before, after = _entries(old), _entries(new)
    found = Changes()
    blank = dag.BLANK
    starting = {s.task: s.attempt for s in decision.start}
    for s in decision.start:
        verdict = decision.tasks.get(s.task)
        found.started.append(
            Started(
                s.task, s.attempt, children.pod_name(workflow, s.task, s.attempt), verdict.ready_at if verdict else None
            )
        )
    for name, entry in after.items():
        if entry is before.get(name) and name not in starting:
            continue  # the very entry of last time, and no start: nothing of this task changed
        prior = before.get(name) or {}
        state = states.get(name, blank)
        # the attempt the state describes, if it ended in this reconcile
        attempt = state.attempts
        if attempt and not _attempt_closed(prior, attempt):
            ended_now = name in starting or _attempt_closed(entry, attempt)
            if ended_now:
                outcome = "Succeeded" if state.pod == "Succeeded" else "Failed"
                found.ended.append(
                    Ended(
                        name, attempt, children.pod_name(workflow, name, attempt), outcome,
                        state.attempt_started, state.attempt_finished or now,
                        reason="" if outcome == "Succeeded" else (entry.get("reason") or state.reason or "Error"),
                        exit_code=state.exit_code,
                    )
                )  # fmt: skip
        if entry.get("retryTime") and entry.get("retryTime") != prior.get("retryTime"):
            found.retries.append(Retry(name, int(entry.get("attempts") or 0), entry.get("message") or ""))
        elif name in starting and starting[name] > 1 and not prior.get("retryTime"):
            found.retries.append(Retry(name, starting[name] - 1, f"attempt {starting[name] - 1} failed"))
        phase = entry.get("phase")
        if phase in dag.FINAL and prior.get("phase") != phase:
            found.task_ends.append(TaskEnd(name, str(phase), entry.get("message") or ""))
    if new.get("phase") in ("Succeeded", "Failed") and (old or {}).get("phase") != new.get("phase"):
        found.workflow_end = str(new.get("phase"))
    return found


def seconds(start: datetime.datetime | str | None, end: datetime.datetime | str | None) -> float | None:
    """Seconds between two moments (datetimes or RFC 3339 strings); None if either is unknown."""
    a = models.parse_timestamp(start) if isinstance(start, str) else start
    b = models.parse_timestamp(end) if isinstance(end, str) else end
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds())
