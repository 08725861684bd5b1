"""Reading what the engine reported, and the pure status of Workspaces and Snapshots.

An engine pod reports through its termination message (one JSON object, see `roadie jvs`); a pod
the engine never finished (deadline, eviction, deletion) has none, and the Job's own condition says
why. Statuses are computed whole from what was observed, so a reconcile writes once, or not at all.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from roadie.core import conditions, models

READY = "Ready"
CLAIM_BOUND = "ClaimBound"
INITIALIZED = "Initialized"
AUTO_SNAPSHOT = "AutoSnapshot"
ENGINE_EXIT = {1: "EngineFailed", 2: "InvalidInput", 3: "SnapshotNotFound", 4: "Corrupt", 5: "EngineUnavailable",
               6: "VolumeLocked"}  # fmt: skip
RESULT_FIELDS = ("snapshotID", "size", "descriptorChecksum", "integrityState", "createdAt", "completedAt", "fileCount")


@dataclasses.dataclass
class Outcome:
    """One engine run as far as it got: not started, running, or done (succeeded or not)."""

    state: str  # "absent" | "pending" | "running" | "succeeded" | "failed"
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    reason: str = ""
    message: str = ""

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed")


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        found = (container.get("state") or {}).get("terminated")
        if found:
            return dict(found)
    return None


def outcome(job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> Outcome:
    """What the engine Job `job` (and its pods) report."""
    if job is None:
        return Outcome("absent")
    for pod in pods:
        ended = _terminated(pod)
        if ended is None:
            continue
        text = ended.get("message") or ""
        try:
            result = json.loads(text) if text.strip().startswith("{") else {}
        except ValueError:
            result = {}
        code = int(ended.get("exitCode") or 0)
        if code == 0 and "error" not in result:
            return Outcome("succeeded", result)
        reason = result.get("reason") or ENGINE_EXIT.get(code) or ended.get("reason") or "EngineFailed"
        message = result.get("error") or text.strip()[-500:] or f"the engine exited with {code}"
        return Outcome("failed", result, reason, message)
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return Outcome(
                "failed", {}, cond.get("reason") or "JobFailed", cond.get("message") or "the engine Job failed"
            )
    running = any((p.get("status") or {}).get("phase") == "Running" for p in pods)
    return Outcome("running" if running else "pending")


def stamp(value: Any) -> str | None:
    """An engine time (`2026-01-01T00:00:00.123Z`) as a Kubernetes timestamp (whole seconds)."""
    if not value:
        return None
    moment = models.parse_timestamp(str(value))
    return models.timestamp(moment) if moment else None


def snapshot_result(result: dict[str, Any]) -> dict[str, Any]:
    found = {k: result[k] for k in RESULT_FIELDS if result.get(k) is not None}
    for key in ("createdAt", "completedAt"):
        if key in found:
            found[key] = stamp(found[key])
    return found


def with_condition(
    status: dict[str, Any], type_: str, ok: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    status["conditions"] = conditions.set_condition(
        status.get("conditions"), type_, conditions.TRUE if ok else conditions.FALSE, reason, message,
        generation=generation,
    )  # fmt: skip
    return status


@dataclasses.dataclass
class WorkspaceSeen:
    generation: int | None = None
    failure: tuple[str, str] | None = None
    terminating: bool = False
    claim_problem: str | None = None
    init: Outcome = dataclasses.field(default_factory=lambda: Outcome("absent"))
    replicas: int = 1
    ready_replicas: int = 0
    pod_problems: list[str] = dataclasses.field(default_factory=list)
    snapshot_count: int = 0
    current: str | None = None
    last_snapshot: datetime.datetime | None = None
    next_snapshot: datetime.datetime | None = None
    last_schedule: datetime.datetime | None = None
    claim_name: str | None = None
    schedule_note: tuple[bool, str, str] | None = None  # ok, reason, message


def workspace(old: dict[str, Any], seen: WorkspaceSeen) -> dict[str, Any]:
    gen = seen.generation
    new: dict[str, Any] = {
        "observedGeneration": gen,
        "snapshotCount": seen.snapshot_count,
        "readyReplicas": seen.ready_replicas,
        "conditions": list(old.get("conditions") or []),
        "currentSnapshot": seen.current,
        "lastSnapshotTime": models.timestamp(seen.last_snapshot) if seen.last_snapshot else None,
        "nextSnapshotTime": models.timestamp(seen.next_snapshot) if seen.next_snapshot else None,
        "lastScheduleTime": models.timestamp(seen.last_schedule) if seen.last_schedule else None,
        "claimName": seen.claim_name,
    }
    if seen.schedule_note is not None:
        with_condition(new, AUTO_SNAPSHOT, *seen.schedule_note, gen)
    if seen.terminating:
        new.update(phase="Terminating", message="deleting the workspace's snapshots")
        return new
    if seen.failure is not None:
        reason, message = seen.failure
        new.update(phase="Failed", message=message)
        return with_condition(new, READY, False, reason, message, gen)
    if seen.claim_problem:
        with_condition(new, CLAIM_BOUND, False, "ClaimPending", seen.claim_problem, gen)
        new.update(phase="Pending", message=seen.claim_problem)
        return with_condition(new, READY, False, "ClaimPending", seen.claim_problem, gen)
    with_condition(new, CLAIM_BOUND, True, "Bound", f"claim {seen.claim_name} is bound", gen)
    if seen.init.state == "failed":
        message = f"laying the volume out failed ({seen.init.reason}): {seen.init.message}"
        with_condition(new, INITIALIZED, False, seen.init.reason or "InitFailed", message, gen)
        new.update(phase="Failed", message=message)
        return with_condition(new, READY, False, "InitFailed", message, gen)
    if seen.init.state != "succeeded" and not conditions.is_true(old.get("conditions"), INITIALIZED):
        new.update(phase="Creating", message="laying the volume out (.jvs/, main/, worktrees/)")
        return with_condition(new, READY, False, "Initializing", new["message"], gen)
    with_condition(new, INITIALIZED, True, "Initialized", "the JVS layout is on the volume", gen)
    if seen.ready_replicas < seen.replicas:
        problems = "; ".join(seen.pod_problems)
        message = f"{seen.ready_replicas}/{seen.replicas} workspace pods ready" + (f": {problems}" if problems else "")
        phase = "Updating" if old.get("phase") in ("Ready", "Updating") else "Creating"
        new.update(phase=phase, message=message)
        return with_condition(new, READY, False, "PodsNotReady", message, gen)
    message = f"{seen.ready_replicas} workspace pods ready, {seen.snapshot_count} snapshots"
    new.update(phase="Ready", message=message)
    return with_condition(new, READY, True, "Ready", message, gen)
