"""The scheduling decision, as pure functions of the spec, what is known of
each task, and the time: what to start now, what to stop, which tasks end and how.

The graph itself is `topology`'s. One decision walks the tasks once in
topological order and each dependency once, so it costs O(tasks + edges): a 2,000-task workflow is
decided in milliseconds after every pod event, from memory.

The rules, in the order they apply:
- a task runs when every dependency has Succeeded; at most `maxConcurrent` of the workflow's pods
  are Pending or Running (a pod being stopped still counts until it is gone);
- among ready tasks, the one heading the longest chain of dependents starts first (critical path
  first), then spec order;
- a failed attempt is retried after `duration x factor^(n-1)` (at most `maxDuration`) while
  `retryStrategy.limit` allows; after that the task is Failed, its dependents are Skipped with a
  message naming the failed dependency, and independent branches run on unless `failFast`;
- a task attempt running past `activeDeadlineSeconds` is stopped and counts as a failed attempt
  (reason DeadlineExceeded); the workflow's `activeDeadlineSeconds` stops everything;
- `suspend` starts nothing new (retries neither); what runs finishes. The phase stays what it is
  (Pending or Running) and the decision says `suspended`, which `status` shows as a condition.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import operator
from collections.abc import Mapping, Sequence
from typing import Literal

from roadie.core import durations
from roadie.observatory import models
from roadie.observatory.topology import Graph

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
FINAL = ("Succeeded", "Failed", "Skipped")

# reasons (task verdicts and the workflow)
DEADLINE_EXCEEDED = "DeadlineExceeded"
DEPENDENCY_FAILED = "DependencyFailed"
FAIL_FAST = "FailFast"
POD_DELETED = "PodDeleted"
TASK_FAILED = "TaskFailed"
ALL_SUCCEEDED = "AllSucceeded"


def backoff_delay(strategy: models.RetryStrategy | None, retry: int) -> datetime.timedelta:
    """How long the `retry`-th retry (1 for the first) waits after the failed attempt ended."""
    if strategy is None or strategy.backoff is None or retry < 1:
        return datetime.timedelta(0)
    backoff = strategy.backoff
    seconds = durations.parse(backoff.duration).total_seconds() * backoff.factor ** (retry - 1)
    if backoff.maxDuration is not None:
        seconds = min(seconds, durations.parse(backoff.maxDuration).total_seconds())
    return datetime.timedelta(seconds=min(seconds, durations.MAXIMUM.total_seconds()))


@dataclasses.dataclass(frozen=True)
class TaskState:
    """What is known of one task: its latest attempt's pod (from memory) and what status recorded.

    `attempts` counts pods created. A pod the caller created and has not seen yet is passed as
    `pod="Pending"`; `pod=None` with attempts > 0 (and no retry recorded) means the latest attempt's
    pod is gone, which counts as a failed attempt.
    """

    attempts: int = 0
    pod: PodPhase | None = None
    attempt_started: datetime.datetime | None = None
    attempt_finished: datetime.datetime | None = None
    exit_code: int | None = None
    #: why the latest attempt failed, as the pod says (Error, OOMKilled, DeadlineExceeded, ...)
    reason: str = ""
    #: the phase status recorded; Succeeded, Failed and Skipped are verdicts that stay
    recorded: models.TaskPhase = "Pending"
    recorded_reason: str = ""
    recorded_message: str = ""
    ready_at: datetime.datetime | None = None
    retry_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None


#: The state of a task nothing is known of: one object, so that memos see it unchanged.
BLANK = TaskState()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One task's phase after the decision, with what status shows about it."""

    phase: models.TaskPhase
    attempts: int = 0
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    ready_at: datetime.datetime | None = None
    retry_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    #: the pod of the latest attempt is Pending or Running (it occupies a slot)
    active: bool = False


@dataclasses.dataclass(frozen=True)
class Start:
    task: str
    attempt: int


@dataclasses.dataclass(frozen=True)
class Stop:
    task: str
    attempt: int
    reason: str


@dataclasses.dataclass
class Decision:
    phase: models.Phase
    reason: str
    message: str
    tasks: dict[str, Verdict]
    start: list[Start] = dataclasses.field(default_factory=list)
    stop: list[Stop] = dataclasses.field(default_factory=list)
    suspended: bool = False
    #: the earliest moment the decision could change without any event: a retry or a deadline
    next_due: datetime.datetime | None = None
    counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


class Clock:
    """The decision's `now`, noting whether it was read: a verdict judged without reading it holds
    at any later moment, so the next decision may reuse it (see `Memo`)."""

    __slots__ = ("moment", "read")

    def __init__(self, moment: datetime.datetime) -> None:
        self.moment = moment
        self.read = False

    def __call__(self) -> datetime.datetime:
        self.read = True
        return self.moment


@dataclasses.dataclass(frozen=True)
class _Judged:
    state: TaskState
    deps: tuple[Verdict | None, ...]
    verdict: Verdict
    cause: str
    timeless: bool


class Memo:
    """One run's verdicts from its last decision, each with what it was judged from. A verdict is
    a function of its task's state, its dependencies' verdicts (and the failed task behind them),
    the run's start and, sometimes, the time; so when the state and the dependencies' verdicts are
    the very objects of last time and the time was not read, it is the same verdict and is not
    judged again. A thousand-task run then judges only the tasks whose pods changed. Verdicts
    judged again and found equal keep their old object, so their dependents are reused in turn."""

    def __init__(self) -> None:
        self.spec: models.ObservatorySpec | None = None
        self.graph: Graph | None = None
        self.started: datetime.datetime | None = None
        self.judged: list[_Judged | None] = []

    def valid_for(self, spec: models.ObservatorySpec, graph: Graph, started: datetime.datetime | None) -> None:
        """Forget everything when the spec, its graph or the run's start is not the one of last time."""
        if self.spec is not spec or self.graph is not graph or self.started != started:
            self.spec, self.graph, self.started = spec, graph, started
            self.judged = [None] * len(graph)


def _earliest(*moments: datetime.datetime | None) -> datetime.datetime | None:
    found = [m for m in moments if m is not None]
    return min(found) if found else None


def _live(state: TaskState) -> bool:
    return state.pod in ("Pending", "Running")


def _attempt(task: models.Task, state: TaskState, clock: Clock) -> Verdict | None:
    """The latest attempt's own outcome, before dependencies, slots and the workflow are looked at;
    None when no attempt has started. A recorded retry means the attempt was judged already."""
    if state.retry_at is not None:
        return Verdict(
            "Pending", state.attempts, state.recorded_reason, state.recorded_message, state.exit_code,
            ready_at=state.ready_at, retry_at=state.retry_at, active=_live(state),
        )  # fmt: skip
    if state.pod == "Succeeded":
        return Verdict(
            "Succeeded", state.attempts, exit_code=state.exit_code, ready_at=state.ready_at,
            finished_at=state.attempt_finished or clock(),
        )  # fmt: skip
    if _live(state):
        deadline = task.activeDeadlineSeconds
        if deadline and state.attempt_started and clock() >= state.attempt_started + _seconds(deadline):
            return _failed_attempt(task, state, DEADLINE_EXCEEDED, f"it ran longer than {deadline}s", clock())
        return Verdict("Running", state.attempts, ready_at=state.ready_at, active=True)
    if state.attempts == 0:
        return None
    if state.pod == "Failed":
        detail = f"exit code {state.exit_code}" if state.exit_code is not None else state.reason or "Error"
        return _failed_attempt(task, state, state.reason or "Error", detail, state.attempt_finished or clock())
    # the latest attempt's pod is gone: stopped at its deadline, evicted, or deleted by hand
    if state.recorded_reason == DEADLINE_EXCEEDED:
        return _failed_attempt(task, state, DEADLINE_EXCEEDED, "it ran past its deadline", clock())
    return _failed_attempt(task, state, POD_DELETED, "its pod was deleted", state.attempt_finished or clock())


def _failed_attempt(task: models.Task, state: TaskState, reason: str, detail: str, ended: datetime.datetime) -> Verdict:
    if state.attempts <= task.retry_limit:
        retry_at = ended + backoff_delay(task.retryStrategy, state.attempts)
        message = f"attempt {state.attempts} failed ({detail}); attempt {state.attempts + 1} at {_clock(retry_at)}"
        return Verdict(
            "Pending", state.attempts, reason, message, state.exit_code, ready_at=state.ready_at,
            retry_at=retry_at, active=_live(state),
        )  # fmt: skip
    tries = f" after {state.attempts} attempts" if state.attempts > 1 else ""
    return Verdict(
        "Failed", state.attempts, reason, f"failed{tries}: {detail}", state.exit_code, ready_at=state.ready_at,
        finished_at=ended, active=_live(state),
    )  # fmt: skip


def _seconds(n: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=n)


def _clock(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _judge(
    i: int, graph: Graph, task: models.Task, state: TaskState, verdicts: Sequence[Verdict | None],
    cause: list[str], clock: Clock, started: datetime.datetime | None,
) -> Verdict:  # fmt: skip
    """Task `i`'s verdict from its own state and its dependencies' verdicts (judged before it)."""
    name = graph.names[i]
    if state.recorded in FINAL:
        if state.recorded == "Failed":
            cause[i] = name
        elif state.recorded == "Skipped":
            cause[i] = next((cause[d] for d in graph.deps[i] if cause[d]), "")
        return Verdict(
            state.recorded, state.attempts, state.recorded_reason, state.recorded_message, state.exit_code,
            ready_at=state.ready_at, finished_at=state.finished_at or clock(), active=_live(state),
        )  # fmt: skip
    own = _attempt(task, state, clock)
    if own is not None:
        if own.phase == "Failed":
            cause[i] = name
        return own
    deps = [verdicts[d] for d in graph.deps[i]]
    for d, dep in zip(graph.deps[i], deps, strict=True):
        assert dep is not None
        if dep.phase == "Failed":
            cause[i] = graph.names[d]
            return Verdict("Skipped", reason=DEPENDENCY_FAILED, message=f"not run: dependency {cause[i]} failed",
                           finished_at=clock())  # fmt: skip
        if dep.phase == "Skipped":
            cause[i] = cause[d] or graph.names[d]
            message = f"not run: dependency {graph.names[d]} was skipped ({cause[i]} failed)"
            return Verdict("Skipped", reason=DEPENDENCY_FAILED, message=message, finished_at=clock())
    if not all(dep is not None and dep.phase == "Succeeded" for dep in deps):
        return Verdict("Pending")
    ready_at = state.ready_at
    if ready_at is None:  # when the last dependency finished, or when the run started
        ends = [dep.finished_at or clock() for dep in deps if dep is not None]
        ready_at = max(ends) if ends else started or clock()
    return Verdict("Pending", ready_at=ready_at)


def decide(
    spec: models.ObservatorySpec,
    graph: Graph,
    states: Mapping[str, TaskState],
    *,
    now: datetime.datetime,
    started: datetime.datetime | None = None,
    memo: Memo | None = None,
) -> Decision:
    """The whole decision for one run at `now`. `started` is the run's recorded start (status
    startTime), None before anything started. A task missing from `states` has not started.
    With `memo` (the same one for every decision of one run), verdicts that cannot have changed
    are taken from the decision before; the decision is the same as without it."""
    blank = BLANK
    names = graph.names
    judged = _judge_all(spec, graph, states, now, started, memo)

    deadline_at = None
    if spec.activeDeadlineSeconds and started is not None:
        deadline_at = started + datetime.timedelta(seconds=spec.activeDeadlineSeconds)
    out_of_time = deadline_at is not None and now >= deadline_at
    failed = _sweep(spec, graph, judged, out_of_time=out_of_time, now=now)

    # starts: ready tasks by priority, while slots are free and the run is not suspended
    slots = spec.maxConcurrent - sum(1 for v in judged if v.active)
    start: list[Start] = []
    next_due: datetime.datetime | None = None
    for i in graph.priority:
        v = judged[i]
        if v.phase != "Pending" or v.active or (v.ready_at is None and v.retry_at is None):
            continue
        if v.retry_at is not None and v.retry_at > now:
            if not spec.suspend:
                next_due = _earliest(next_due, v.retry_at)
            continue
        if spec.suspend or slots <= 0:
            continue
        slots -= 1
        start.append(Start(names[i], v.attempts + 1))
        judged[i] = dataclasses.replace(
            v, phase="Running", attempts=v.attempts + 1, retry_at=None, active=True, reason="", message=""
        )

    # stops, and the deadlines of what runs on
    stop = [
        Stop(names[i], v.attempts, DEADLINE_EXCEEDED)
        for i, v in enumerate(judged)
        if v.active and v.reason == DEADLINE_EXCEEDED
    ]
    started_now = {s.task for s in start}
    for i, v in enumerate(judged):
        seconds = spec.tasks[i].activeDeadlineSeconds
        if v.phase == "Running" and seconds:
            state = states.get(names[i], blank)
            begun = now if names[i] in started_now else state.attempt_started or now
            next_due = _earliest(next_due, begun + datetime.timedelta(seconds=seconds))
    counts: collections.Counter[str] = collections.Counter(str(v.phase) for v in judged)
    finished = all(v.phase in FINAL for v in judged)
    if not finished:
        next_due = _earliest(next_due, deadline_at)
    phase, reason, message = _phase(judged, counts, failed, out_of_time, spec)
    return Decision(
        phase=phase, reason=reason, message=message,
        tasks={names[i]: v for i, v in enumerate(judged)},
        start=start, stop=stop, suspended=spec.suspend and not finished,
        next_due=None if finished else next_due, counts=counts,
    )  # fmt: skip


def _judge_all(
    spec: models.ObservatorySpec,
    graph: Graph,
    states: Mapping[str, TaskState],
    now: datetime.datetime,
    started: datetime.datetime | None,
    memo: Memo | None,
) -> list[Verdict]:
    """Every task's verdict, in topological order; with `memo`, last decision's where it holds."""
    verdicts: list[Verdict | None] = [None] * len(graph)
    cause = [""] * len(graph)  # for a Failed or Skipped task: the failed task at the root of it
    clock = Clock(now)
    if memo is not None:
        memo.valid_for(spec, graph, started)
    for i in graph.order:
        state = states.get(graph.names[i], BLANK)
        if memo is None:
            verdicts[i] = _judge(i, graph, spec.tasks[i], state, verdicts, cause, clock, started)
            continue
        known = memo.judged[i]
        deps = tuple([verdicts[d] for d in graph.deps[i]])
        if known is not None and known.timeless and known.state is state and _same(known.deps, deps):
            verdicts[i], cause[i] = known.verdict, known.cause
            continue
        clock.read = False
        verdict = _judge(i, graph, spec.tasks[i], state, verdicts, cause, clock, started)
        if known is not None and known.cause == cause[i] and known.verdict == verdict:
            verdict = known.verdict  # the same verdict: its dependents may be reused
        verdicts[i] = verdict
        memo.judged[i] = _Judged(state, deps, verdict, cause[i], not clock.read)
    judged: list[Verdict] = [v for v in verdicts if v is not None]
    assert len(judged) == len(graph), "every task is judged once, in topological order"
    return judged


def _same(a: tuple[Verdict | None, ...], b: tuple[Verdict | None, ...]) -> bool:
    """The very same verdicts (identity: equal verdicts may stand for different failed tasks)."""
    return a is b or (len(a) == len(b) and all(map(operator.is_, a, b)))


def _sweep(
    spec: models.ObservatorySpec, graph: Graph, judged: list[Verdict], *, out_of_time: bool, now: datetime.datetime
) -> list[str]:
    """What will not start any more: all of it past the workflow's deadline, all of it after a
    failure with failFast. Returns the failed tasks in topological order."""
    if out_of_time:
        why = f"the workflow ran longer than {spec.activeDeadlineSeconds}s"
        for i, v in enumerate(judged):
            if v.phase not in FINAL:
                phase: models.TaskPhase = "Failed" if v.active else "Skipped"
                message = f"stopped: {why}" if v.active else f"not run: {why}"
                judged[i] = dataclasses.replace(
                    v, phase=phase, reason=DEADLINE_EXCEEDED, message=message, retry_at=None, finished_at=now
                )
    failed = [graph.names[i] for i in graph.order if judged[i].phase == "Failed"]
    if not spec.failFast or not failed or out_of_time:
        return failed
    for i, v in enumerate(judged):
        if v.phase == "Pending" and v.retry_at is not None:
            judged[i] = dataclasses.replace(
                v, phase="Failed", retry_at=None, finished_at=now,
                message=f"{v.message.split(';')[0]}; no retry after {failed[0]} failed (failFast)",
            )  # fmt: skip
        elif v.phase == "Pending":
            judged[i] = dataclasses.replace(
                v, phase="Skipped", reason=FAIL_FAST, finished_at=now, message=f"not run: {failed[0]} failed (failFast)"
            )
    return [graph.names[i] for i in graph.order if judged[i].phase == "Failed"]


def _phase(
    verdicts: Sequence[Verdict],
    counts: collections.Counter[str],
    failed: Sequence[str],
    out_of_time: bool,
    spec: models.ObservatorySpec,
) -> tuple[models.Phase, str, str]:
    total = len(verdicts)
    if out_of_time:
        return "Failed", DEADLINE_EXCEEDED, f"the workflow ran longer than {spec.activeDeadlineSeconds}s"
    if counts["Succeeded"] == total:
        return "Succeeded", ALL_SUCCEEDED, f"all {total} tasks succeeded"
    if all(v.phase in FINAL for v in verdicts):
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        return "Failed", TASK_FAILED, f"{len(failed)} task{'s' if len(failed) != 1 else ''} failed: {shown}"
    if any(v.attempts > 0 or v.phase in FINAL for v in verdicts):
        return "Running", "", ""
    return "Pending", "", ""


def expires_at(spec: models.ObservatorySpec, completed: datetime.datetime | None) -> datetime.datetime | None:
    """When a finished run is deleted (`ttlSecondsAfterFinished` after its completion), or None."""
    if completed is None or spec.ttlSecondsAfterFinished is None:
        return None
    return completed + datetime.timedelta(seconds=spec.ttlSecondsAfterFinished)
