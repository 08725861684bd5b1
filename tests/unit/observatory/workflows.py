"""Workflows for the Observatory unit tests, and a fake run loop: the decision applied again and
again in fake time, pods finishing as a script says, as the reconcile will apply it. A scheduling
rule broken anywhere in a run shows as a violated invariant here, without a cluster."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable
from typing import Any

from roadie.observatory import dag, models, topology

T0 = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)


def task(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "command": ["true"], "dependencies": list(deps), **fields}


def spec(*tasks: dict[str, Any], **fields: Any) -> models.ObservatorySpec:
    return models.ObservatorySpec.model_validate({"tasks": list(tasks), **fields})


def seconds(n: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=n)


def layered(width: int, depth: int, fan_in: int = 2) -> list[dict[str, Any]]:
    """`depth` layers of `width` tasks; each task depends on `fan_in` tasks of the layer above."""
    tasks = []
    for layer in range(depth):
        for i in range(width):
            deps = [f"l{layer - 1}-{(i + k) % width}" for k in range(fan_in)] if layer else []
            tasks.append(task(f"l{layer}-{i}", *dict.fromkeys(deps)))
    return tasks


#: What happens to a pod: (seconds it runs, exit code); by task name and attempt number.
Script = Callable[[str, int], tuple[float, int]]


def succeed_after(duration: float = 1.0) -> Script:
    return lambda name, attempt: (duration, 0)


@dataclasses.dataclass
class Pod:
    task: str
    attempt: int
    created: datetime.datetime
    ends: datetime.datetime
    exit_code: int
    stopped: bool = False


@dataclasses.dataclass
class Run:
    """The outcome of a simulated run, with the history a test checks invariants on."""

    decision: dag.Decision
    pods: list[Pod]
    steps: int
    now: datetime.datetime
    max_live: int


def simulate(
    workflow: models.ObservatorySpec,
    script: Script,
    *,
    start: datetime.datetime = T0,
    limit: int = 100_000,
    on_step: Callable[[datetime.datetime, dag.Decision], None] | None = None,
) -> Run:
    """Decide, create the pods, advance fake time to the next pod end or due moment, record."""
    graph = topology.build(workflow.tasks)
    pods: dict[tuple[str, int], Pod] = {}
    recorded: dict[str, dag.Verdict] = {}
    now, started = start, None
    max_live = 0
    for step in range(limit):
        states = {name: _state(name, recorded.get(name), pods, now) for name in graph.names}
        decision = dag.decide(workflow, graph, states, now=now, started=started)
        if on_step:
            on_step(now, decision)
        for stop in decision.stop:
            pod = pods[(stop.task, stop.attempt)]
            pod.stopped, pod.ends = True, now
        for begin in decision.start:
            if started is None:
                started = now
            duration, code = script(begin.task, begin.attempt)
            pods[(begin.task, begin.attempt)] = Pod(begin.task, begin.attempt, now, now + seconds(duration), code)
        recorded = decision.tasks
        max_live = max(max_live, sum(1 for p in pods.values() if p.ends > now and not p.stopped))
        if decision.finished:
            return Run(decision, list(pods.values()), step, now, max_live)
        if decision.stop:
            continue  # the stopped pods' deletion is an event: decide again at once
        upcoming = [p.ends for p in pods.values() if p.ends > now]
        if decision.next_due:
            upcoming.append(decision.next_due)
        if not upcoming:
            return Run(decision, list(pods.values()), step, now, max_live)
        now = min(upcoming)
    raise AssertionError(f"no end after {limit} steps")


def _state(
    name: str, verdict: dag.Verdict | None, pods: dict[tuple[str, int], Pod], now: datetime.datetime
) -> dag.TaskState:
    if verdict is None:
        return dag.TaskState()
    pod = pods.get((name, verdict.attempts))
    phase: dag.PodPhase | None = None
    if pod is not None and not pod.stopped:
        phase = "Running" if pod.ends > now else ("Succeeded" if pod.exit_code == 0 else "Failed")
    finished = pod.ends if pod is not None and pod.ends <= now else None
    return dag.TaskState(
        attempts=verdict.attempts,
        pod=phase,
        attempt_started=pod.created if pod else None,
        attempt_finished=finished,
        exit_code=pod.exit_code if phase == "Failed" else None,
        reason="Error" if phase == "Failed" else "",
        recorded=verdict.phase,
        recorded_reason=verdict.reason,
        recorded_message=verdict.message,
        ready_at=verdict.ready_at,
        retry_at=verdict.retry_at,
        finished_at=verdict.finished_at,
    )


def first_start(pods: Iterable[Pod], name: str) -> datetime.datetime:
    return min(p.created for p in pods if p.task == name)


def last_end(pods: Iterable[Pod], name: str) -> datetime.datetime:
    return max(p.ends for p in pods if p.task == name)
