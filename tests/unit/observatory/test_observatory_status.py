"""Status, both ways: pods and the recorded status turned into each task's state for the next
decision (so a restarted operator resumes where the last one stopped), and a decision turned into
the status users read (phase, progress, per-task entries, one condition per concern). And the size
of a 2,000-task workflow in etcd, which must stay well under its 1.5 MiB object limit.
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.observatory import workflows as wf

from roadie.core import conditions
from roadie.observatory import children, dag, models, schedules, status, topology

STAMP = "2026-05-01T12:00:00Z"


def pod(task: str, attempt: int, phase: str, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "metadata": {
            "name": children.pod_name("wf", task, attempt),
            "creationTimestamp": STAMP,
            "labels": children.task_labels("wf", task, attempt),
        },
        "status": {"phase": phase, **extra},
    }
    return found


def terminated(code: int, reason: str, finished: str = "2026-05-01T12:00:07Z") -> dict[str, Any]:
    return {"containerStatuses": [{"name": "main", "state": {"terminated": {
        "exitCode": code, "reason": reason, "finishedAt": finished}}}]}  # fmt: skip


def test_a_running_pod_is_a_running_attempt() -> None:
    state = status.observe({"name": "a", "phase": "Running", "attempts": 1}, pod("a", 1, "Running"))
    assert state.pod == "Running" and state.attempts == 1 and state.attempt_started == wf.T0


def test_a_failed_pod_brings_its_exit_code_reason_and_end() -> None:
    state = status.observe(
        {"name": "a", "attempts": 1, "phase": "Running"}, pod("a", 1, "Failed", **terminated(3, "Error"))
    )
    assert state.pod == "Failed" and state.exit_code == 3 and state.reason == "Error"
    assert state.attempt_finished == wf.T0 + wf.seconds(7)


def test_a_pod_newer_than_the_status_wins_over_what_status_recorded() -> None:
    """The operator created attempt 2 and stopped before writing status: the old retry is done."""
    recorded = {"name": "a", "phase": "Pending", "attempts": 1, "retryTime": STAMP, "reason": "Error"}
    state = status.observe(recorded, pod("a", 2, "Running"))
    assert state.attempts == 2 and state.retry_at is None and state.recorded == "Running" and state.pod == "Running"


def test_a_pod_created_but_not_seen_yet_counts_as_pending() -> None:
    state = status.observe({"name": "a", "phase": "Pending"}, None, unseen_attempt=1)
    assert state.pod == "Pending" and state.attempts == 1


def test_the_latest_attempt_is_the_pod_that_counts() -> None:
    pods = [pod("a", 1, "Failed"), pod("a", 3, "Running"), pod("a", 2, "Failed"), pod("b", 1, "Succeeded")]
    latest = status.latest_pods(pods)
    assert status.attempt_of(latest["a"]) == 3 and status.attempt_of(latest["b"]) == 1
    states = status.observe_all({"tasks": [{"name": "c", "phase": "Pending"}]}, latest)
    assert set(states) == {"a", "b", "c"} and states["a"].pod == "Running"


QUICK = wf.spec(wf.task("setup"), wf.task("process", "setup"), wf.task("finalize", "process"))


def decide(states: dict[str, dag.TaskState], now_s: float, workflow: Any = QUICK) -> dag.Decision:
    return dag.decide(workflow, topology.build(workflow.tasks), states, now=wf.T0 + wf.seconds(now_s), started=wf.T0)


def cond(found: dict[str, Any], type_: str) -> dict[str, Any]:
    hit = conditions.get(found["conditions"], type_)
    assert hit is not None, type_
    return hit


def test_a_started_workflow_shows_progress_and_compact_task_entries() -> None:
    decision = dag.decide(QUICK, topology.build(QUICK.tasks), {}, now=wf.T0)
    found = status.compute({}, decision, {}, workflow="wf", generation=1, now=wf.T0)
    assert found["phase"] == "Running" and found["progress"] == "0/3" and found["startTime"] == STAMP
    assert found["message"] == "1 running"
    setup, process, _ = found["tasks"]
    assert setup == {
        "name": "setup", "phase": "Running", "startTime": STAMP, "attempts": 1,
        "podName": children.pod_name("wf", "setup", 1), "readyTime": STAMP,
    }  # fmt: skip
    assert process == {"name": "process", "phase": "Pending"}, "nothing but what holds a value"
    assert cond(found, status.VALID)["status"] == "True"
    assert cond(found, status.COMPLETE)["status"] == "False"
    assert cond(found, status.SUSPENDED)["status"] == "False"
    assert found["completionTime"] is None
    models.ObservatoryStatus.model_validate(found)  # the CRD's schema takes it


def test_a_finished_workflow_is_complete_with_its_reason() -> None:
    done = {
        name: dag.TaskState(attempts=1, pod="Succeeded", attempt_finished=wf.T0 + wf.seconds(i + 1), recorded="Running")
        for i, name in enumerate(("setup", "process", "finalize"))
    }
    decision = decide(done, 5)
    old = {"startTime": STAMP, "tasks": [{"name": "setup", "startTime": STAMP, "attempts": 1}]}
    found = status.compute(old, decision, done, workflow="wf", generation=2, now=wf.T0 + wf.seconds(5))
    assert found["phase"] == "Succeeded" and found["progress"] == "3/3"
    assert found["completionTime"] == "2026-05-01T12:00:03Z", "when the last task ended, not when it was seen"
    complete = cond(found, status.COMPLETE)
    assert complete["status"] == "True" and complete["reason"] == dag.ALL_SUCCEEDED
    assert found["message"] == "all 3 tasks succeeded" and found["observedGeneration"] == 2
    assert found["tasks"][0]["exitCode"] == 0 and found["tasks"][0]["startTime"] == STAMP


def test_a_failed_task_entry_says_why() -> None:
    failed = {"setup": dag.TaskState(attempts=1, pod="Failed", exit_code=2, reason="Error",
                                     attempt_finished=wf.T0 + wf.seconds(1), recorded="Running")}  # fmt: skip
    found = status.compute({}, decide(failed, 2), failed, workflow="wf", generation=1, now=wf.T0 + wf.seconds(2))
    setup, process, _ = found["tasks"]
    assert setup["phase"] == "Failed" and setup["exitCode"] == 2 and setup["message"] == "failed: exit code 2"
    assert process["phase"] == "Skipped" and process["reason"] == dag.DEPENDENCY_FAILED
    assert found["phase"] == "Failed" and cond(found, status.COMPLETE)["reason"] == dag.TASK_FAILED


def test_a_status_read_back_resumes_the_same_decision() -> None:
    """What compute writes, observe reads: a retry's due time survives an operator restart."""
    workflow = wf.spec(wf.task("a", retryStrategy={"limit": 1, "backoff": {"duration": "30s"}}))
    states = {"a": dag.TaskState(attempts=1, pod="Failed", exit_code=1, reason="Error",
                                 attempt_finished=wf.T0, recorded="Running")}  # fmt: skip
    first = decide(states, 1, workflow)
    written = status.compute({}, first, states, workflow="wf", generation=1, now=wf.T0 + wf.seconds(1))
    (entry,) = written["tasks"]
    assert entry["retryTime"] == "2026-05-01T12:00:30Z" and entry["phase"] == "Pending"
    again = status.observe_all(written, {})  # the failed pod is gone; status alone says when
    later = decide(again, 30, workflow)
    assert later.start == [dag.Start("a", 2)]


def test_suspended_is_a_condition_not_a_phase() -> None:
    workflow = wf.spec(wf.task("a"), suspend=True)
    found = status.compute({}, decide({}, 0, workflow), {}, workflow="wf", generation=1, now=wf.T0)
    assert found["phase"] == "Pending"
    suspended = cond(found, status.SUSPENDED)
    assert suspended["status"] == "True" and "no new task starts" in suspended["message"]


def test_an_invalid_spec_fails_naming_the_problem() -> None:
    found = status.invalid({}, "dependency cycle: b -> c -> b", generation=3, now=wf.T0)
    assert found["phase"] == "Failed" and found["message"] == "dependency cycle: b -> c -> b"
    valid = cond(found, status.VALID)
    assert valid["status"] == "False" and valid["reason"] == status.INVALID_SPEC and "b -> c -> b" in valid["message"]


def test_a_schedule_status() -> None:
    decision = schedules.Decision(active=["nightly-1"], last_schedule_time=wf.T0, next_tick=wf.T0 + wf.seconds(60))
    found = status.schedule({}, decision, suspended=False, generation=1, now=wf.T0)
    assert found["phase"] == "Running" and found["active"] == [{"name": "nightly-1"}]
    assert found["lastScheduleTime"] == STAMP and found["nextScheduleTime"] == "2026-05-01T12:01:00Z"
    paused = status.schedule({"lastScheduleTime": STAMP}, schedules.Decision(), suspended=True, generation=1, now=wf.T0)
    assert paused["phase"] == "Pending" and paused["nextScheduleTime"] is None and paused["lastScheduleTime"] == STAMP


def test_two_thousand_tasks_fit_well_inside_etcd() -> None:
    """Measured: a finished 2,000-task run (task names like `l12-34`, one attempt each) has a status
    of 436,243 bytes of JSON; with its spec (busybox tasks, two dependencies each) 659,329 bytes.
    The API server adds managedFields: tests/cluster/test_observatory_schema.py measured the object
    as stored at 910,935 bytes, 58% of etcd's 1.5 MiB limit."""
    workflow = wf.spec(*wf.layered(width=100, depth=20), maxConcurrent=2000)
    run = wf.simulate(workflow, wf.succeed_after(1))
    states = {
        name: dag.TaskState(
            attempts=v.attempts, recorded=v.phase, finished_at=v.finished_at, ready_at=v.ready_at, attempt_started=wf.T0
        )
        for name, v in run.decision.tasks.items()
    }
    found = status.compute({}, run.decision, states, workflow="layered-workflow", generation=1, now=run.now)
    assert found["phase"] == "Succeeded" and len(found["tasks"]) == 2000
    status_size = len(json.dumps(found, separators=(",", ":")))
    obj = {
        "apiVersion": models.API.api_version, "kind": "Observatory",
        "metadata": {"name": "layered-workflow", "namespace": "pipelines", "uid": "x" * 36, "generation": 1},
        "spec": workflow.model_dump(mode="json", exclude_none=True), "status": found,
    }  # fmt: skip
    object_size = len(json.dumps(obj, separators=(",", ":")))
    limit = int(1.5 * 1024 * 1024)
    assert status_size < 0.35 * limit, status_size
    assert object_size < 0.5 * limit, object_size
