"""An Observatory's status, computed from one decision (pure): phase, progress, per-task entries,
and one setter per condition. Also the way back: what status and the task pods say about each
task, as the `dag.TaskState` the next decision starts from.

The status of 2,000 tasks is one object in etcd, so each task's entry is kept small: only the
fields that hold a value are written (no nulls, no empty messages), times in whole seconds.

Phases are the seed's (Pending, Running, Succeeded, Failed). Suspension does not change the phase;
the `Suspended` condition says it (and `kubectl get obs -o wide` shows `spec.suspend`). Conditions:
- `Valid`: the spec is a DAG of known tasks and its schedule can be read (False: reason InvalidSpec,
  the message names the cycle or the field);
- `Suspended`: True while `suspend` holds back a run or a schedule that has not finished;
- `Complete`: True once a run has finished, the reason says how (AllSucceeded, TaskFailed,
  DeadlineExceeded), as a Job's `Complete`/`Failed` do.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from roadie.core import conditions, models
from roadie.observatory import children, dag, schedules

VALID = "Valid"
SUSPENDED = "Suspended"
COMPLETE = "Complete"

# reasons
ACCEPTED = "Accepted"
INVALID_SPEC = "InvalidSpec"
NOT_SUSPENDED = "NotSuspended"
SUSPENDED_BY_SPEC = "Suspended"
IN_PROGRESS = "InProgress"
SCHEDULE = "Schedule"


# --- from status and pods to the decision's input -------------------------------------------------


def _time(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return value
    return _parse(value) if value else None


# A 1,000-task run's reconcile reads and writes some 4,000 timestamps, nearly all the same ones
# as the reconcile before: remembered, they cost a dictionary look-up instead of a parse.
@functools.lru_cache(maxsize=16384)
def _parse(text: str) -> datetime.datetime | None:
    return models.parse_timestamp(text)


@functools.lru_cache(maxsize=16384)
def _format(moment: datetime.datetime) -> str:
    return models.timestamp(moment)


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == children.CONTAINER:
            return (status.get("state") or {}).get("terminated") or {}
    return {}


def attempt_of(pod: Mapping[str, Any]) -> int:
    """The attempt a task pod runs (its label), 0 for a pod without one."""
    value = (pod.get("metadata", {}).get("labels") or {}).get(children.ATTEMPT_LABEL, "0")
    return int(value) if str(value).isdigit() else 0


def observe(
    recorded: Mapping[str, Any] | None,
    pod: Mapping[str, Any] | None,
    *,
    unseen_attempt: int | None = None,
) -> dag.TaskState:
    """One task's state: its entry in status (`recorded`), the pod of its latest attempt as the
    cache holds it (a plain dict, `obj.to_dict()`), and `unseen_attempt`, an attempt whose pod this
    operator created and the cache does not show yet (it counts as Pending, never as gone)."""
    recorded = recorded or {}
    recorded_attempts = int(recorded.get("attempts") or 0)
    attempts = max(recorded_attempts, attempt_of(pod) if pod else 0, unseen_attempt or 0)
    current = attempts == recorded_attempts  # status describes this attempt, not an older one
    phase: dag.PodPhase | None = None
    started = finished = None
    exit_code: int | None = recorded.get("exitCode") if current else None
    reason = ""
    if pod is not None and attempt_of(pod) == attempts:
        pod_status = pod.get("status") or {}
        raw = pod_status.get("phase")
        phase = raw if raw in ("Pending", "Running", "Succeeded", "Failed") else "Pending"
        started = _time(pod.get("metadata", {}).get("creationTimestamp"))
        terminated = _terminated(pod)
        finished = _time(terminated.get("finishedAt"))
        if terminated.get("exitCode") is not None:
            exit_code = int(terminated["exitCode"])
        reason = pod_status.get("reason") or terminated.get("reason") or ""
        if phase in ("Succeeded", "Failed") and finished is None:
            finished = _time(_condition_time(pod_status)) or started
    elif unseen_attempt is not None and unseen_attempt == attempts:
        phase = "Pending"
    return dag.TaskState(
        attempts=attempts,
        pod=phase,
        attempt_started=started,
        attempt_finished=finished,
        exit_code=exit_code,
        reason=reason,
        recorded=recorded.get("phase", "Pending") if current else ("Running" if phase else "Pending"),
        recorded_reason=(recorded.get("reason") or "") if current else "",
        recorded_message=(recorded.get("message") or "") if current else "",
        ready_at=_time(recorded.get("readyTime")),
        retry_at=_time(recorded.get("retryTime")) if current else None,
        finished_at=_time(recorded.get("completionTime")) if current else None,
    )


def _condition_time(pod_status: Mapping[str, Any]) -> Any:
    for condition in pod_status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("lastTransitionTime")
    return None


class Memo:
    """One run's task states and status entries from its last reconcile, each with what it was
    made from, so that the next reconcile makes again only those of tasks that changed.

    A state is a function of the task's status entry, its latest pod and an unseen attempt. Status
    entries are never changed in place (each reconcile builds new ones, and reuses the old object
    when nothing changed), and neither are cached pods (a new version replaces the object), so
    when the entry and the pod are the very objects of last time (the pod at the same
    resourceVersion) and the unseen attempt is the same, so is the state. The memo holds the
    objects it compares, so an identity cannot be taken over by a new object. A state or an entry
    made again and found equal keeps its old object, so that what is computed from it downstream
    (`dag.Memo`, `report.changes`) is reused in turn."""

    def __init__(self) -> None:
        self.observed: dict[str, tuple[Any, Any, Any, int | None, dag.TaskState]] = {}
        self.entries: dict[str, tuple[dag.Verdict, dag.TaskState, Any, dict[str, Any]]] = {}
        #: the status the last reconcile computed
        self.last: dict[str, Any] | None = None
        self.judged = dag.Memo()


def observe_all(
    status: Mapping[str, Any] | None,
    latest_pods: Mapping[str, Mapping[str, Any]],
    unseen: Mapping[str, int] | None = None,
    memo: Memo | None = None,
) -> dict[str, dag.TaskState]:
    """Every task's state: `latest_pods` maps a task name to its latest attempt's pod. With
    `memo` (the same one for every reconcile of one run), the states of tasks whose entry and pod
    did not change are last reconcile's; the result is the same as without it."""
    recorded = {t.get("name"): t for t in (status or {}).get("tasks") or []}
    unseen = unseen or {}
    names = set(recorded) | set(latest_pods) | set(unseen)
    if memo is None:  # from scratch: also what the memo's tests check it against
        return {
            name: observe(recorded.get(name), latest_pods.get(name), unseen_attempt=unseen.get(name))
            for name in names
            if name
        }
    states: dict[str, dag.TaskState] = {}
    before, memo.observed = memo.observed, {}
    for name in names:
        if not name:
            continue
        entry, pod, attempt = recorded.get(name), latest_pods.get(name), unseen.get(name)
        version = pod["metadata"].get("resourceVersion") if pod is not None else None
        known = before.get(name)
        if known is not None and known[0] is entry and known[1] is pod and known[2] == version and known[3] == attempt:
            memo.observed[name] = known
            states[name] = known[4]
            continue
        state = observe(entry, pod, unseen_attempt=attempt)
        if known is not None and state == known[4]:
            state = known[4]
        memo.observed[name] = (entry, pod, version, attempt, state)
        states[name] = state
    return states


def latest_pods(pods: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Each task's pod with the highest attempt, from a run's pods (selected by its label)."""
    found: dict[str, Mapping[str, Any]] = {}
    for pod in pods:
        task = (pod.get("metadata", {}).get("labels") or {}).get(children.TASK_LABEL)
        if not task:
            continue
        other = found.get(task)
        if other is None or attempt_of(pod) > attempt_of(other):
            found[task] = pod
    return found


# --- from the decision to status -----------------------------------------------------------------


Conditions = list[dict[str, Any]]


def set_valid(conds: Conditions, problem: str | None, *, generation: int | None, now: datetime.datetime) -> Conditions:
    if problem:
        return conditions.set_condition(
            conds, VALID, conditions.FALSE, INVALID_SPEC, problem, generation=generation, now=now
        )
    return conditions.set_condition(conds, VALID, conditions.TRUE, ACCEPTED, "", generation=generation, now=now)


def set_suspended(
    conds: Conditions, suspended: bool, message: str, *, generation: int | None, now: datetime.datetime
) -> Conditions:
    if suspended:
        status, reason = conditions.TRUE, SUSPENDED_BY_SPEC
    else:
        status, reason, message = conditions.FALSE, NOT_SUSPENDED, ""
    return conditions.set_condition(conds, SUSPENDED, status, reason, message, generation=generation, now=now)


def set_complete(
    conds: Conditions, decision: dag.Decision | None, *, generation: int | None, now: datetime.datetime
) -> Conditions:
    if decision is not None and decision.finished:
        status, reason, message = conditions.TRUE, decision.reason, decision.message
    else:
        status, reason, message = conditions.FALSE, IN_PROGRESS, ""
    return conditions.set_condition(conds, COMPLETE, status, reason, message, generation=generation, now=now)


def progress(decision: dag.Decision) -> str:
    return f"{decision.counts['Succeeded']}/{len(decision.tasks)}"


def _stamp(moment: datetime.datetime | None) -> str | None:
    return _format(moment) if moment else None


def _entry(
    workflow: str,
    name: str,
    verdict: dag.Verdict,
    start: str | None,
    state: dag.TaskState,
    now: datetime.datetime,
) -> tuple[dict[str, Any], bool]:
    """A task's status entry (`start`: the startTime recorded), and whether it took `now`."""
    timeless = True
    entry: dict[str, Any] = {"name": name, "phase": verdict.phase}
    if verdict.attempts:
        first = start or _stamp(state.attempt_started if verdict.attempts == 1 else None)
        timeless = bool(first)
        entry["startTime"] = first or models.timestamp(now)
        entry["attempts"] = verdict.attempts
        entry["podName"] = children.pod_name(workflow, name, verdict.attempts)
    if verdict.phase in dag.FINAL:
        timeless = timeless and verdict.finished_at is not None
        entry["completionTime"] = _stamp(verdict.finished_at) or models.timestamp(now)
    exit_code = verdict.exit_code
    if exit_code is None and verdict.phase == "Succeeded":
        exit_code = 0
    optional = {
        "readyTime": _stamp(verdict.ready_at),
        "retryTime": _stamp(verdict.retry_at),
        "exitCode": exit_code,
        "reason": verdict.reason,
        "message": verdict.message,
    }
    entry.update({k: v for k, v in optional.items() if v not in (None, "")})
    return entry, timeless


def _entries(
    workflow: str,
    recorded: Mapping[str, Mapping[str, Any]],
    decision: dag.Decision,
    states: Mapping[str, dag.TaskState],
    now: datetime.datetime,
    memo: Memo | None,
) -> list[dict[str, Any]]:
    """Every task's entry; with `memo`, last reconcile's object where the verdict and the state
    are the very objects of last time and the entry did not take the time."""
    blank = dag.BLANK
    tasks = []
    memo = memo or Memo()  # an empty memo reuses nothing
    before, memo.entries = memo.entries, {}
    for name, verdict in decision.tasks.items():
        state = states.get(name, blank)
        start = (recorded.get(name) or {}).get("startTime")
        known = before.get(name)
        if known is not None and known[0] is verdict and known[1] is state and known[2] == start:
            entry = known[3]
            memo.entries[name] = known
        else:
            entry, timeless = _entry(workflow, name, verdict, start, state, now)
            if known is not None and entry == known[3]:
                entry = known[3]
            if timeless:
                memo.entries[name] = (verdict, state, start, entry)
        tasks.append(entry)
    return tasks


def compute(
    old: Mapping[str, Any] | None,
    decision: dag.Decision,
    states: Mapping[str, dag.TaskState],
    *,
    workflow: str,
    generation: int | None,
    now: datetime.datetime,
    memo: Memo | None = None,
) -> dict[str, Any]:
    """A run's whole status after `decision` (the decision's starts counted as made); with
    `memo`, made from last reconcile's entries where nothing changed, and the same as without."""
    old = old or {}
    recorded = {t.get("name"): t for t in old.get("tasks") or []}
    tasks = _entries(workflow, recorded, decision, states, now, memo)
    started = old.get("startTime") or (
        models.timestamp(now) if any(v.attempts for v in decision.tasks.values()) else None
    )
    completed = old.get("completionTime")
    if decision.finished and not completed:
        ends = [v.finished_at for v in decision.tasks.values() if v.finished_at]
        completed = models.timestamp(max(ends) if ends else now)
    running = decision.counts["Running"]
    message = decision.message
    if not decision.finished:
        message = f"{running} running" + (", suspended: no new task starts" if decision.suspended else "")
    conds = list(old.get("conditions") or [])
    conds = set_valid(conds, None, generation=generation, now=now)
    held = "suspend is set: running tasks finish, no new task starts"
    conds = set_suspended(conds, decision.suspended, held, generation=generation, now=now)
    conds = set_complete(conds, decision, generation=generation, now=now)
    return {
        "phase": decision.phase,
        "progress": progress(decision),
        "message": message,
        "startTime": started,
        "completionTime": completed if decision.finished else None,
        "observedGeneration": generation,
        "tasks": tasks,
        "conditions": conds,
    }


def invalid(
    old: Mapping[str, Any] | None, problem: str, *, generation: int | None, now: datetime.datetime
) -> dict[str, Any]:
    """The status of a spec only the operator can refuse (a cycle, a schedule the pattern let
    through): Failed, and the Valid condition names what to fix."""
    old = old or {}
    conds = set_valid(list(old.get("conditions") or []), problem, generation=generation, now=now)
    conds = conditions.set_condition(
        conds, COMPLETE, conditions.TRUE, INVALID_SPEC, problem, generation=generation, now=now
    )
    return {
        "phase": "Failed",
        "message": problem,
        "observedGeneration": generation,
        "completionTime": old.get("completionTime") or models.timestamp(now),
        "conditions": conds,
    }


def schedule(
    old: Mapping[str, Any] | None,
    decision: schedules.Decision,
    *,
    suspended: bool,
    generation: int | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """A schedule's status: its active runs, last and next tick. Phase Running while a run is
    active, Pending between runs."""
    old = old or {}
    conds = set_valid(list(old.get("conditions") or []), None, generation=generation, now=now)
    conds = set_suspended(conds, suspended, "suspend is set: no new run starts", generation=generation, now=now)
    last = decision.last_schedule_time or _time(old.get("lastScheduleTime"))
    return {
        "phase": "Running" if decision.active else "Pending",
        "message": decision.message,
        "lastScheduleTime": _stamp(last),
        "nextScheduleTime": None if suspended else _stamp(decision.next_tick),
        "active": [{"name": name} for name in decision.active],
        "observedGeneration": generation,
        "conditions": conds,
    }
