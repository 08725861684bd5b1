"""What a reconcile reports (events, metrics, spans) is read from the difference between the stored
status and the new one: each start, each ended attempt, each retry and each verdict appears once,
in the reconcile that made it, and never again in the next one (or after a restart)."""

from __future__ import annotations

import datetime
from typing import Any

from tests.unit.observatory import workflows as wf

from roadie.core import models as core_models
from roadie.observatory import children, dag, report, status, topology

STAMP = "2026-05-01T12:00:00Z"


def pod(task: str, attempt: int, phase: str, code: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "metadata": {
            "name": children.pod_name("wf", task, attempt),
            "creationTimestamp": STAMP,
            "labels": children.task_labels("wf", task, attempt),
        },
        "status": {"phase": phase},
    }
    if code is not None:
        found["status"]["containerStatuses"] = [
            {"name": "main", "state": {"terminated": {"exitCode": code, "finishedAt": "2026-05-01T12:00:05Z"}}}
        ]
    return found


def step(
    spec: Any, old: dict[str, Any], pods: list[dict[str, Any]], now: datetime.datetime
) -> tuple[dict[str, Any], report.Changes]:
    graph = topology.build(spec.tasks)
    states = status.observe_all(old, status.latest_pods(pods))
    decision = dag.decide(spec, graph, states, now=now, started=core_models.parse_timestamp(old.get("startTime")))
    new = status.compute(old, decision, states, workflow="wf", generation=1, now=now)
    return new, report.changes("wf", old, new, decision, states, now=now)


def test_starts_ends_and_the_workflow_end_are_reported_once() -> None:
    spec = wf.spec(wf.task("a"), wf.task("b", "a"))
    now = wf.T0
    first, changes = step(spec, {}, [], now)
    assert [(s.task, s.attempt) for s in changes.started] == [("a", 1)]
    assert changes.ended == [] and changes.task_ends == [] and changes.workflow_end is None
    assert changes.started[0].ready_at == now

    again, changes = step(spec, first, [pod("a", 1, "Running")], now + wf.seconds(1))
    assert changes.started == [] and changes.ended == []

    later = now + wf.seconds(6)
    second, changes = step(spec, again, [pod("a", 1, "Succeeded", 0)], later)
    assert [(s.task, s.attempt) for s in changes.started] == [("b", 1)]
    assert [(e.task, e.attempt, e.outcome) for e in changes.ended] == [("a", 1, "Succeeded")]
    ended = changes.ended[0]
    assert report.seconds(ended.started, ended.finished) == 5.0
    assert [(t.task, t.phase) for t in changes.task_ends] == [("a", "Succeeded")]

    pods = [pod("a", 1, "Succeeded", 0), pod("b", 1, "Succeeded", 0)]
    third, changes = step(spec, second, pods, later + wf.seconds(1))
    assert changes.workflow_end == "Succeeded"
    assert [(t.task, t.phase) for t in changes.task_ends] == [("b", "Succeeded")]
    _, changes = step(spec, third, pods, later + wf.seconds(2))
    assert changes == report.Changes(), "nothing is reported twice"


def test_a_failed_attempt_with_a_backoff_is_a_retry_then_a_new_start() -> None:
    retry = {"limit": 1, "backoff": {"duration": "10s"}}
    spec = wf.spec(wf.task("a", retryStrategy=retry), wf.task("b", "a"))
    first, _ = step(spec, {}, [], wf.T0)
    failed, changes = step(spec, first, [pod("a", 1, "Failed", 3)], wf.T0 + wf.seconds(6))
    assert [(r.task, r.failed_attempt) for r in changes.retries] == [("a", 1)]
    assert [(e.task, e.outcome, e.exit_code) for e in changes.ended] == [("a", "Failed", 3)]
    _, changes = step(spec, failed, [pod("a", 1, "Failed", 3)], wf.T0 + wf.seconds(8))
    assert changes == report.Changes(), "the retry is announced once, while it waits"
    _, changes = step(spec, failed, [pod("a", 1, "Failed", 3)], wf.T0 + wf.seconds(16))
    assert [(s.task, s.attempt) for s in changes.started] == [("a", 2)]
    assert changes.ended == [] and changes.retries == []


def test_an_immediate_retry_ends_the_attempt_and_starts_the_next_in_one_reconcile() -> None:
    spec = wf.spec(wf.task("a", retryStrategy={"limit": 1}))
    first, _ = step(spec, {}, [], wf.T0)
    _, changes = step(spec, first, [pod("a", 1, "Failed", 1)], wf.T0 + wf.seconds(6))
    assert [(s.task, s.attempt) for s in changes.started] == [("a", 2)]
    assert [(e.task, e.attempt, e.outcome) for e in changes.ended] == [("a", 1, "Failed")]
    assert [(r.task, r.failed_attempt) for r in changes.retries] == [("a", 1)]


def test_a_final_failure_skips_and_fails_the_workflow() -> None:
    spec = wf.spec(wf.task("a"), wf.task("b", "a"))
    first, _ = step(spec, {}, [], wf.T0)
    _, changes = step(spec, first, [pod("a", 1, "Failed", 2)], wf.T0 + wf.seconds(6))
    assert {(t.task, t.phase) for t in changes.task_ends} == {("a", "Failed"), ("b", "Skipped")}
    assert changes.workflow_end == "Failed"
