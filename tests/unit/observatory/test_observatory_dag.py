"""The workflow graph and the scheduling decision: what starts when, what is skipped and why,
retries and their backoff, deadlines, suspend, failFast, and the workflow's phase.

Each rule the issue states is checked on one small decision, then whole runs are simulated in
fake time (tests/unit/observatory/workflows.py) and checked for the invariants that must hold at
every step: a task starts only after its dependencies succeeded, never more than maxConcurrent
pods live, each attempt started once.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.unit.observatory import workflows as wf

from roadie.observatory import dag, models, topology


def graph_of(*tasks: dict[str, object]) -> topology.Graph:
    return topology.build(wf.spec(*tasks).tasks)


def test_order_and_layers_follow_dependencies() -> None:
    graph = graph_of(wf.task("finalize", "process"), wf.task("process", "setup"), wf.task("setup"), wf.task("lint"))
    assert [graph.names[i] for i in graph.order] == ["setup", "lint", "process", "finalize"]
    assert graph.layers() == [["setup", "lint"], ["process"], ["finalize"]]
    # the task heading the longest chain starts first
    assert graph.names[graph.priority[0]] == "setup"


def test_a_diamond_takes_the_longest_path_for_its_layer() -> None:
    graph = graph_of(wf.task("a"), wf.task("b", "a"), wf.task("c", "b"), wf.task("d", "a", "c"))
    assert graph.layers() == [["a"], ["b"], ["c"], ["d"]]


def test_a_cycle_is_named_in_order() -> None:
    with pytest.raises(topology.GraphError) as caught:
        graph_of(wf.task("ok"), wf.task("b", "c"), wf.task("c", "d", "ok"), wf.task("d", "b"), wf.task("after", "d"))
    assert caught.value.cycle == ("b", "c", "d", "b")
    assert "dependency cycle: b -> c -> d -> b" in str(caught.value)
    assert caught.value.field == "spec.tasks"


def test_a_two_task_cycle() -> None:
    with pytest.raises(topology.GraphError, match=r"a -> b -> a"):
        graph_of(wf.task("a", "b"), wf.task("b", "a"))


@pytest.mark.parametrize(
    ("tasks", "match", "field"),
    [
        ([wf.task("a"), wf.task("a")], "two tasks are named 'a'", "spec.tasks[1].name"),
        ([wf.task("a"), wf.task("b", "nope")], "'b' depends on 'nope'", "spec.tasks[1].dependencies"),
        ([wf.task("a", "a")], "'a' depends on itself", "spec.tasks[0].dependencies"),
    ],
)
def test_what_the_api_server_refuses_is_refused_here_too(
    tasks: list[dict[str, object]], match: str, field: str
) -> None:
    with pytest.raises(topology.GraphError, match=match) as caught:
        graph_of(*tasks)
    assert caught.value.field == field


def test_a_dependency_named_twice_is_one_edge() -> None:
    graph = graph_of(wf.task("a"), wf.task("b", "a", "a"))
    assert graph.deps[1] == (0,)


def test_backoff_grows_by_the_factor_up_to_the_cap() -> None:
    strategy = models.RetryStrategy.model_validate(
        {"limit": 5, "backoff": {"duration": "10s", "factor": 3, "maxDuration": "1m"}}
    )
    assert [dag.backoff_delay(strategy, n).total_seconds() for n in range(1, 5)] == [10, 30, 60, 60]
    assert dag.backoff_delay(models.RetryStrategy(limit=2), 1).total_seconds() == 0
    assert dag.backoff_delay(None, 1).total_seconds() == 0


QUICKSTART = wf.spec(wf.task("setup"), wf.task("process", "setup"), wf.task("finalize", "process"))


def test_first_decision_starts_the_roots_and_nothing_else() -> None:
    decision = dag.decide(QUICKSTART, topology.build(QUICKSTART.tasks), {}, now=wf.T0)
    assert decision.start == [dag.Start("setup", 1)]
    assert decision.phase == "Running"
    assert decision.tasks["setup"].ready_at == wf.T0
    assert decision.tasks["process"].phase == "Pending" and decision.tasks["process"].ready_at is None


def test_a_dependent_starts_when_its_dependency_succeeded_and_knows_since_when() -> None:
    states = {
        "setup": dag.TaskState(attempts=1, pod="Succeeded", attempt_finished=wf.T0 + wf.seconds(3), recorded="Running")
    }
    decision = dag.decide(
        QUICKSTART, topology.build(QUICKSTART.tasks), states, now=wf.T0 + wf.seconds(4), started=wf.T0
    )
    assert decision.start == [dag.Start("process", 1)]
    assert decision.tasks["setup"].phase == "Succeeded"
    assert decision.tasks["process"].ready_at == wf.T0 + wf.seconds(3)


def test_the_seed_quickstart_runs_in_order() -> None:
    run = wf.simulate(QUICKSTART, wf.succeed_after(2))
    assert run.decision.phase == "Succeeded" and run.decision.message == "all 3 tasks succeeded"
    assert wf.first_start(run.pods, "process") >= wf.last_end(run.pods, "setup")
    assert wf.first_start(run.pods, "finalize") >= wf.last_end(run.pods, "process")
    assert run.now == wf.T0 + wf.seconds(6)


def test_the_three_task_sample_runs_two_in_parallel() -> None:
    sample = wf.spec(wf.task("task-1"), wf.task("task-2", "task-1"), wf.task("task-3", "task-1"))
    run = wf.simulate(sample, wf.succeed_after(5))
    assert wf.first_start(run.pods, "task-2") == wf.first_start(run.pods, "task-3") == wf.T0 + wf.seconds(5)
    assert run.max_live == 2 and run.decision.phase == "Succeeded"


def test_max_concurrent_is_never_exceeded() -> None:
    wide = wf.spec(*(wf.task(f"t{i}") for i in range(10)), maxConcurrent=2)
    run = wf.simulate(wide, wf.succeed_after(1))
    assert run.max_live == 2
    assert run.now == wf.T0 + wf.seconds(5)
    assert len(run.pods) == 10


def test_a_failed_task_skips_its_dependents_and_other_branches_run_on() -> None:
    workflow = wf.spec(wf.task("a"), wf.task("b", "a"), wf.task("c", "b"), wf.task("x"), wf.task("y", "x"))
    run = wf.simulate(workflow, lambda name, attempt: (1, 3 if name == "a" else 0))
    tasks = run.decision.tasks
    assert tasks["a"].phase == "Failed" and tasks["a"].exit_code == 3 and "exit code 3" in tasks["a"].message
    assert tasks["b"].phase == "Skipped" and tasks["b"].message == "not run: dependency a failed"
    assert tasks["c"].phase == "Skipped" and tasks["c"].message == "not run: dependency b was skipped (a failed)"
    assert tasks["b"].reason == tasks["c"].reason == dag.DEPENDENCY_FAILED
    assert tasks["y"].phase == "Succeeded", "an independent branch runs to its end"
    assert run.decision.phase == "Failed" and run.decision.message == "1 task failed: a"
    assert {p.task for p in run.pods} == {"a", "x", "y"}


def test_fail_fast_starts_nothing_after_a_failure_but_lets_running_tasks_finish() -> None:
    workflow = wf.spec(wf.task("a"), wf.task("slow"), wf.task("later", "slow"), failFast=True)
    run = wf.simulate(workflow, lambda name, attempt: (5 if name == "slow" else 1, 1 if name == "a" else 0))
    tasks = run.decision.tasks
    assert tasks["slow"].phase == "Succeeded", "a running task is not stopped"
    assert tasks["later"].phase == "Skipped" and tasks["later"].reason == dag.FAIL_FAST
    assert "a failed (failFast)" in tasks["later"].message
    assert run.decision.phase == "Failed" and run.now == wf.T0 + wf.seconds(5)


def test_a_retry_succeeds_on_the_second_attempt_after_its_backoff() -> None:
    retry = {"limit": 2, "backoff": {"duration": "10s", "factor": 2}}
    workflow = wf.spec(wf.task("flaky", retryStrategy=retry), wf.task("after", "flaky"))
    run = wf.simulate(workflow, lambda name, attempt: (1, 1 if (name, attempt) == ("flaky", 1) else 0))
    flaky = [p for p in run.pods if p.task == "flaky"]
    assert [p.attempt for p in flaky] == [1, 2]
    assert flaky[1].created == flaky[0].ends + wf.seconds(10)
    assert run.decision.tasks["flaky"].attempts == 2 and run.decision.phase == "Succeeded"


def test_retries_back_off_and_then_fail_with_the_count() -> None:
    retry = {"limit": 2, "backoff": {"duration": "10s", "factor": 3}}
    workflow = wf.spec(wf.task("doomed", retryStrategy=retry))
    dues = []
    run = wf.simulate(workflow, lambda name, attempt: (1, 7), on_step=lambda now, d: dues.append(d.next_due))
    pods = [p for p in run.pods if p.task == "doomed"]
    assert [p.attempt for p in pods] == [1, 2, 3]
    assert pods[1].created - pods[0].ends == wf.seconds(10)
    assert pods[2].created - pods[1].ends == wf.seconds(30)
    doomed = run.decision.tasks["doomed"]
    assert doomed.phase == "Failed" and doomed.attempts == 3
    assert doomed.message == "failed after 3 attempts: exit code 7"
    assert wf.T0 + wf.seconds(11) in dues, "the retry's due time is handed to the scheduler"


def test_a_task_waiting_for_its_retry_says_when() -> None:
    workflow = wf.spec(wf.task("flaky", retryStrategy={"limit": 1, "backoff": {"duration": "1m"}}))
    failed = dag.TaskState(
        attempts=1, pod="Failed", exit_code=2, reason="Error", attempt_started=wf.T0,
        attempt_finished=wf.T0 + wf.seconds(5), recorded="Running",
    )  # fmt: skip
    states = {"flaky": failed}
    decision = dag.decide(workflow, topology.build(workflow.tasks), states, now=wf.T0 + wf.seconds(6), started=wf.T0)
    flaky = decision.tasks["flaky"]
    assert flaky.phase == "Pending" and flaky.retry_at == wf.T0 + wf.seconds(65)
    assert flaky.message == "attempt 1 failed (exit code 2); attempt 2 at 2026-05-01T12:01:05Z"
    assert decision.next_due == wf.T0 + wf.seconds(65) and decision.start == [] and decision.phase == "Running"


def test_a_task_deadline_stops_the_attempt_and_fails_the_task() -> None:
    workflow = wf.spec(wf.task("slow", activeDeadlineSeconds=30), wf.task("after", "slow"))
    graph = topology.build(workflow.tasks)
    running = {"slow": dag.TaskState(attempts=1, pod="Running", attempt_started=wf.T0, recorded="Running")}
    before = dag.decide(workflow, graph, running, now=wf.T0 + wf.seconds(29), started=wf.T0)
    assert before.next_due == wf.T0 + wf.seconds(30) and before.stop == []
    at = dag.decide(workflow, graph, running, now=wf.T0 + wf.seconds(30), started=wf.T0)
    assert at.stop == [dag.Stop("slow", 1, dag.DEADLINE_EXCEEDED)]
    assert at.tasks["slow"].phase == "Failed" and at.tasks["slow"].reason == dag.DEADLINE_EXCEEDED
    assert at.tasks["after"].phase == "Skipped"
    assert at.phase == "Failed"


def test_a_task_deadline_in_a_whole_run_with_a_retry() -> None:
    workflow = wf.spec(wf.task("slow", activeDeadlineSeconds=3, retryStrategy={"limit": 1}))
    run = wf.simulate(workflow, lambda name, attempt: (10 if attempt == 1 else 1, 0))
    pods = [p for p in run.pods if p.task == "slow"]
    assert pods[0].stopped and pods[0].ends == wf.T0 + wf.seconds(3)
    assert pods[1].created == wf.T0 + wf.seconds(3) and run.decision.phase == "Succeeded"


def test_the_workflow_deadline_stops_everything() -> None:
    workflow = wf.spec(wf.task("a"), wf.task("b", "a"), wf.task("c"), activeDeadlineSeconds=60, maxConcurrent=1)
    graph = topology.build(workflow.tasks)
    states = {"a": dag.TaskState(attempts=1, pod="Running", attempt_started=wf.T0, recorded="Running")}
    decision = dag.decide(workflow, graph, states, now=wf.T0 + wf.seconds(60), started=wf.T0)
    assert decision.phase == "Failed" and decision.reason == dag.DEADLINE_EXCEEDED
    assert decision.stop == [dag.Stop("a", 1, dag.DEADLINE_EXCEEDED)]
    assert decision.tasks["a"].phase == "Failed"
    assert decision.tasks["b"].phase == decision.tasks["c"].phase == "Skipped"
    assert decision.start == [] and decision.next_due is None
    earlier = dag.decide(workflow, graph, states, now=wf.T0 + wf.seconds(10), started=wf.T0)
    assert earlier.next_due == wf.T0 + wf.seconds(60)


def test_a_stopped_pod_still_counts_until_it_is_gone() -> None:
    workflow = wf.spec(wf.task("slow", activeDeadlineSeconds=5), wf.task("next"), maxConcurrent=1)
    graph = topology.build(workflow.tasks)
    terminating = {
        "slow": dag.TaskState(attempts=1, pod="Running", attempt_started=wf.T0, recorded="Failed",
                              recorded_reason=dag.DEADLINE_EXCEEDED),
    }  # fmt: skip
    decision = dag.decide(workflow, graph, terminating, now=wf.T0 + wf.seconds(6), started=wf.T0)
    assert decision.start == [], "the slot is free only once the pod is gone"
    assert decision.stop == [dag.Stop("slow", 1, dag.DEADLINE_EXCEEDED)], "stopping is repeated until it is gone"


def test_suspend_starts_nothing_new_and_resume_continues() -> None:
    workflow = wf.spec(wf.task("a"), wf.task("b", "a"), wf.task("c"), suspend=True)
    graph = topology.build(workflow.tasks)
    fresh = dag.decide(workflow, graph, {}, now=wf.T0)
    assert fresh.start == [] and fresh.phase == "Pending" and fresh.suspended
    states = {
        "a": dag.TaskState(attempts=1, pod="Succeeded", attempt_finished=wf.T0 + wf.seconds(1), recorded="Running"),
        "c": dag.TaskState(attempts=1, pod="Running", attempt_started=wf.T0, recorded="Running"),
    }
    paused = dag.decide(workflow, graph, states, now=wf.T0 + wf.seconds(2), started=wf.T0)
    assert paused.start == [] and paused.phase == "Running" and paused.suspended
    assert paused.tasks["c"].phase == "Running", "a running task finishes"
    resumed = dag.decide(
        workflow.model_copy(update={"suspend": False}), graph, states, now=wf.T0 + wf.seconds(3), started=wf.T0
    )
    assert resumed.start == [dag.Start("b", 1)] and not resumed.suspended
    assert resumed.tasks["b"].ready_at == wf.T0 + wf.seconds(1)


def test_a_retry_waits_while_suspended() -> None:
    workflow = wf.spec(wf.task("a", retryStrategy={"limit": 1}), suspend=True)
    states = {"a": dag.TaskState(attempts=1, pod="Failed", attempt_finished=wf.T0, exit_code=1, recorded="Running")}
    decision = dag.decide(workflow, topology.build(workflow.tasks), states, now=wf.T0 + wf.seconds(1), started=wf.T0)
    assert decision.start == [] and decision.tasks["a"].phase == "Pending" and decision.next_due is None


def test_a_deleted_pod_is_a_failed_attempt() -> None:
    workflow = wf.spec(wf.task("a"))
    states = {"a": dag.TaskState(attempts=1, pod=None, attempt_started=wf.T0, recorded="Running")}
    decision = dag.decide(workflow, topology.build(workflow.tasks), states, now=wf.T0 + wf.seconds(3), started=wf.T0)
    assert decision.tasks["a"].phase == "Failed" and decision.tasks["a"].reason == dag.POD_DELETED


def test_recorded_verdicts_stay() -> None:
    workflow = wf.spec(wf.task("a"), wf.task("b", "a"))
    states = {"a": dag.TaskState(attempts=1, recorded="Failed", recorded_message="failed: exit code 1",
                                 finished_at=wf.T0)}  # fmt: skip
    decision = dag.decide(workflow, topology.build(workflow.tasks), states, now=wf.T0 + wf.seconds(9), started=wf.T0)
    assert decision.tasks["a"].phase == "Failed" and decision.tasks["a"].message == "failed: exit code 1"
    assert decision.phase == "Failed" and decision.finished


def test_critical_path_first() -> None:
    workflow = wf.spec(wf.task("short"), wf.task("long"), wf.task("l2", "long"), wf.task("l3", "l2"), maxConcurrent=1)
    decision = dag.decide(workflow, topology.build(workflow.tasks), {}, now=wf.T0)
    assert decision.start == [dag.Start("long", 1)]


def test_two_thousand_tasks_run_to_the_end_with_every_invariant() -> None:
    """A 2,000-task layered DAG (20 layers of 100, each task joining two of the layer above) runs
    to Succeeded; at every step only ready tasks start and at most maxConcurrent pods live."""
    workflow = wf.spec(*wf.layered(width=100, depth=20), maxConcurrent=150)
    assert len(workflow.tasks) == 2000
    run = wf.simulate(workflow, wf.succeed_after(1), on_step=check_starts(workflow))
    assert run.decision.phase == "Succeeded" and len(run.pods) == 2000
    assert run.max_live == 100, "each layer of 100 runs at once, under the limit of 150"
    assert run.now == wf.T0 + wf.seconds(20)
    started = {p.task: p.created for p in run.pods}
    ended = {p.task: p.ends for p in run.pods}
    for t in workflow.tasks:
        assert all(started[t.name] >= ended[d] for d in t.dependencies), t.name


def check_starts(workflow: models.ObservatorySpec) -> Callable[[object, dag.Decision], None]:
    """At every step: only tasks whose dependencies all succeeded start, within maxConcurrent."""
    deps = {t.name: t.dependencies for t in workflow.tasks}

    def check(now: object, decision: dag.Decision) -> None:
        for begin in decision.start:
            assert all(decision.tasks[d].phase == "Succeeded" for d in deps[begin.task]), begin.task
        assert sum(1 for v in decision.tasks.values() if v.active) <= workflow.maxConcurrent

    return check


def test_a_wide_workflow_with_a_small_limit_and_failures_keeps_every_invariant() -> None:
    workflow = wf.spec(*wf.layered(width=40, depth=5, fan_in=3), maxConcurrent=7)
    run = wf.simulate(workflow, lambda name, attempt: (1 + len(name) % 3, 1 if name == "l1-3" else 0),
                   on_step=check_starts(workflow))  # fmt: skip
    assert run.max_live == 7
    assert run.decision.phase == "Failed" and run.decision.message == "1 task failed: l1-3"
    skipped = {n for n, v in run.decision.tasks.items() if v.phase == "Skipped"}
    assert skipped and all(n.startswith(("l2-", "l3-", "l4-")) for n in skipped)
    assert {p.task for p in run.pods}.isdisjoint(skipped)
