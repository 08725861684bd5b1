"""The incremental reconcile (`status.Memo`, `dag.Memo`, and `report.changes` skipping entries
that are the very objects of last time) must decide and write exactly what a reconcile from
scratch would. Here both run side by side over randomized runs, pods changing as the cache would
show them (a new object for each new version, the same object otherwise): starts not seen yet,
pods pending, running, succeeding, failing, deleted by hand, stopped at their deadline, retries
with backoff, the workflow's deadline, failFast, suspend and resume, and time moving on with no
pod event at all. Every step compares states, decision, status and reported changes; and a memo
made wrong on purpose (a dependency change ignored, a reading of the time not noticed, a stale
state, verdict or entry) must be caught.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from typing import Any

import pytest
from tests.unit.observatory import workflows as wf

from roadie.core import models as core_models
from roadie.observatory import children, dag, models, report, status, topology

WORKFLOW = "wf"


def _stamp(moment: datetime.datetime) -> str:
    return core_models.timestamp(moment)


def _spec(rng: random.Random, **fields: Any) -> models.ObservatorySpec:
    """A random DAG of 12 to 30 tasks, some with retries (and backoff) and deadlines."""
    count = rng.randint(12, 30)
    tasks = []
    for i in range(count):
        deps = sorted({f"t{rng.randrange(i)}" for _ in range(rng.randint(0, 3))}) if i else []
        extra: dict[str, Any] = {}
        if rng.random() < 0.4:
            strategy: dict[str, Any] = {"limit": rng.randint(1, 3)}
            if rng.random() < 0.6:
                strategy["backoff"] = {"duration": f"{rng.randint(1, 5)}s", "factor": 2}
            extra["retryStrategy"] = strategy
        if rng.random() < 0.25:
            extra["activeDeadlineSeconds"] = rng.randint(2, 6)
        tasks.append(wf.task(f"t{i}", *deps, **extra))
    return wf.spec(*tasks, maxConcurrent=rng.randint(2, 8), **fields)


@dataclasses.dataclass
class Cluster:
    """Pods as the cache holds them: one dict per pod, replaced (never changed) on each update."""

    rng: random.Random
    pods: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: when each live pod's container ends, and with which exit code
    plan: dict[str, tuple[datetime.datetime, int]] = dataclasses.field(default_factory=dict)
    unseen: dict[str, int] = dataclasses.field(default_factory=dict)
    version: int = 0

    def _put(self, name: str, pod: dict[str, Any]) -> None:
        self.version += 1
        pod["metadata"]["resourceVersion"] = str(self.version)
        self.pods[name] = pod

    def create(self, task: str, attempt: int, now: datetime.datetime) -> None:
        """A pod created; the cache may not show it yet (it is then an unseen attempt)."""
        if self.rng.random() < 0.3:
            self.unseen[task] = attempt
            return
        self._show(task, attempt, now)

    def _show(self, task: str, attempt: int, now: datetime.datetime) -> None:
        name = children.pod_name(WORKFLOW, task, attempt)
        meta = {"name": name, "creationTimestamp": _stamp(now), "labels": children.task_labels(WORKFLOW, task, attempt)}
        self._put(name, {"metadata": meta, "status": {"phase": "Pending"}})
        code = 0 if self.rng.random() < 0.7 else self.rng.choice([1, 2, 137])
        self.plan[name] = (now + datetime.timedelta(seconds=self.rng.randint(1, 8)), code)

    def step(self, now: datetime.datetime) -> None:
        """What the cluster does by `now`: unseen pods show up, pods run and end, some are deleted."""
        for task, attempt in list(self.unseen.items()):
            if self.rng.random() < 0.6:
                del self.unseen[task]
                self._show(task, attempt, now)
        for name, pod in list(self.pods.items()):
            phase = pod["status"]["phase"]
            if phase in ("Succeeded", "Failed"):
                continue
            ends, code = self.plan[name]
            if now >= ends:
                reason = "Completed" if code == 0 else "Error"
                finished = {"exitCode": code, "reason": reason, "finishedAt": _stamp(ends)}
                container = {"name": children.CONTAINER, "state": {"terminated": finished}}
                state = {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [container]}
                self._put(name, {"metadata": dict(pod["metadata"]), "status": state})
            elif phase == "Pending" and self.rng.random() < 0.7:
                self._put(name, {"metadata": dict(pod["metadata"]), "status": {"phase": "Running"}})
            elif self.rng.random() < 0.03:
                del self.pods[name]  # deleted by hand, or evicted
            elif self.rng.random() < 0.1:  # a change no decision reads (a condition, an IP)
                self._put(name, {"metadata": dict(pod["metadata"]), "status": {**pod["status"], "podIP": "10.0.0.1"}})

    def stop(self, task: str, attempt: int) -> None:
        self.pods.pop(children.pod_name(WORKFLOW, task, attempt), None)


@dataclasses.dataclass
class Outcome:
    states: dict[str, dag.TaskState]
    decision: dag.Decision
    status: dict[str, Any]
    changes: report.Changes


def reconcile(
    spec: models.ObservatorySpec,
    graph: topology.Graph,
    old: dict[str, Any],
    cluster: Cluster,
    now: datetime.datetime,
    memo: status.Memo | None,
) -> Outcome:
    """One reconcile's pure part, as `reconcile._run` does it."""
    latest = status.latest_pods(list(cluster.pods.values()))
    states = status.observe_all(old, latest, unseen=dict(cluster.unseen), memo=memo)
    started = core_models.parse_timestamp(old.get("startTime"))
    decision = dag.decide(spec, graph, states, now=now, started=started, memo=memo.judged if memo else None)
    new = status.compute(old, decision, states, workflow=WORKFLOW, generation=1, now=now, memo=memo)
    found = report.changes(WORKFLOW, old, new, decision, states, now=now)
    return Outcome(states, decision, new, found)


Tamper = Any  # a function (memo, rng) -> None that makes the memo wrong


def run(seed: int, *, tamper: Tamper = None, steps: int = 400) -> int:
    """Run a random workflow to its end, the memo's reconcile checked against one from scratch at
    every step; returns the steps taken. With `tamper`, the memo is spoilt after a few steps."""
    rng = random.Random(seed)
    fields: dict[str, Any] = {}
    if rng.random() < 0.3:
        fields["failFast"] = True
    if rng.random() < 0.3:
        fields["activeDeadlineSeconds"] = rng.randint(15, 60)
    spec = _spec(rng, **fields)
    graph = topology.build(spec.tasks)
    cluster = Cluster(rng)
    memo = status.Memo()
    old: dict[str, Any] = {}
    now = wf.T0
    for step in range(steps):
        if rng.random() < 0.05:  # suspend or resume: a new spec (generation), the same tasks
            spec = spec.model_copy(update={"suspend": not spec.suspend})
        if tamper is not None and step == 6:
            tamper(memo, rng)
        incremental = reconcile(spec, graph, old, cluster, now, memo)
        scratch = reconcile(spec, graph, old, cluster, now, None)
        where = f"seed {seed}, step {step}"
        assert incremental.states == scratch.states, where
        assert incremental.decision == scratch.decision, where
        assert incremental.status == scratch.status, where
        assert incremental.changes == scratch.changes, where
        decision = incremental.decision
        if decision.finished and not cluster.unseen:
            return step
        for stop in decision.stop:
            cluster.stop(stop.task, stop.attempt)
        for begin in decision.start:
            cluster.create(begin.task, begin.attempt, now)
        old = incremental.status
        if rng.random() < 0.2:
            old = _as_stored(old)  # read back from the API server: equal values, new objects
        if not decision.stop:
            now += datetime.timedelta(seconds=rng.choice([0, 0.5, 1, 1, 2, 3]))
        cluster.step(now)
    raise AssertionError(f"seed {seed}: no end in {steps} steps")


def _as_stored(status_: dict[str, Any]) -> dict[str, Any]:
    """The status as the API server gives it back: nulls dropped, every object new."""
    copied: dict[str, Any] = {k: v for k, v in status_.items() if v is not None}
    copied["tasks"] = [dict(t) for t in status_.get("tasks") or []]
    copied["conditions"] = [dict(c) for c in status_.get("conditions") or []]
    return copied


@pytest.mark.parametrize("seed", range(60))
def test_the_incremental_reconcile_decides_and_writes_what_one_from_scratch_does(seed: int) -> None:
    assert run(seed) > 0


def test_the_random_runs_meet_every_case() -> None:
    """The runs above are worth something only if they meet retries, failures, deadlines, skips,
    unseen starts and deleted pods: counted here over the same seeds."""
    seen: set[str] = set()
    original = dag.decide

    def spy(*args: Any, **kwargs: Any) -> dag.Decision:
        decision = original(*args, **kwargs)
        for verdict in decision.tasks.values():
            seen.add(verdict.phase)
            if verdict.retry_at is not None:
                seen.add("retry")
            if verdict.reason:
                seen.add(verdict.reason)
        if decision.stop:
            seen.add("stop")
        return decision

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dag, "decide", spy)
        for seed in range(60):
            run(seed)
    expected = {"retry", "stop", "Skipped", "Failed", "Succeeded", dag.DEADLINE_EXCEEDED, dag.POD_DELETED}
    assert expected <= seen, expected - seen


def _seeds_caught(tamper: Tamper, patch: Any = None) -> int:
    caught = 0
    for seed in range(30):
        try:
            run(seed, tamper=tamper)
        except AssertionError as error:
            if "no end" not in str(error):
                caught += 1
    return caught


def test_a_stale_state_in_the_memo_is_caught() -> None:
    def tamper(memo: status.Memo, rng: random.Random) -> None:
        for name, known in memo.observed.items():
            memo.observed[name] = (*known[:4], dataclasses.replace(known[4], attempts=known[4].attempts + 1))

    assert _seeds_caught(tamper) >= 10


def test_a_stale_verdict_in_the_memo_is_caught() -> None:
    def tamper(memo: status.Memo, rng: random.Random) -> None:
        memo.judged.judged = [
            None if j is None else dataclasses.replace(j, verdict=dataclasses.replace(j.verdict, message="stale"))
            for j in memo.judged.judged
        ]

    assert _seeds_caught(tamper) >= 10


def test_a_stale_entry_in_the_memo_is_caught() -> None:
    def tamper(memo: status.Memo, rng: random.Random) -> None:
        for name, known in memo.entries.items():
            memo.entries[name] = (*known[:3], {**known[3], "message": "stale"})

    assert _seeds_caught(tamper) >= 10


def test_a_memo_blind_to_its_dependencies_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dag, "_same", lambda a, b: True)
    assert _seeds_caught(None) >= 10


def test_a_memo_blind_to_the_time_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A verdict that read the time (a deadline, a retry's moment, a skip) must be judged again."""

    def unnoticed(self: dag.Clock) -> datetime.datetime:
        return self.moment

    monkeypatch.setattr(dag.Clock, "__call__", unnoticed)
    assert _seeds_caught(None) >= 8


def test_the_memo_judges_again_only_what_changed() -> None:
    """The point of it: after one pod changes, one task of a wide run is observed and judged again."""
    spec = wf.spec(*(wf.task(f"t{i}") for i in range(200)), maxConcurrent=200)
    graph = topology.build(spec.tasks)
    cluster = Cluster(random.Random(0))
    memo = status.Memo()
    first = reconcile(spec, graph, {}, cluster, wf.T0, memo)
    for begin in first.decision.start:
        cluster._show(begin.task, begin.attempt, wf.T0)
    second = reconcile(spec, graph, first.status, cluster, wf.T0, memo)
    third = reconcile(spec, graph, second.status, cluster, wf.T0, memo)
    name = children.pod_name(WORKFLOW, "t7", 1)
    pod = cluster.pods[name]
    done = {"name": children.CONTAINER, "state": {"terminated": {"exitCode": 0, "finishedAt": _stamp(wf.T0)}}}
    cluster._put(
        name, {"metadata": dict(pod["metadata"]), "status": {"phase": "Succeeded", "containerStatuses": [done]}}
    )
    fourth = reconcile(spec, graph, third.status, cluster, wf.T0, memo)
    changed = [n for n in fourth.states if fourth.states[n] is not third.states[n]]
    assert changed == ["t7"]
    entries = {t["name"]: t for t in third.status["tasks"]}
    renewed = [t["name"] for t in fourth.status["tasks"] if t is not entries[t["name"]]]
    assert renewed == ["t7"]
    verdicts = [n for n, v in fourth.decision.tasks.items() if v is not third.decision.tasks[n]]
    assert verdicts == ["t7"]
