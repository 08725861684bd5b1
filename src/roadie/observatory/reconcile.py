"""Observatory reconcile: run a workflow's tasks as pods in dependency order, or, for a schedule,
create its runs at their ticks.

Level-based. A run's reconcile reads its task pods from the cache (watched with a server-side
label selector; each pod's parent pointer wakes its run), turns them and the stored status into
each task's state, asks `dag.decide` what to start and stop, deletes the pods to stop, hands the
pods to start to `starts` (created beside the reconciles, so the next one need not wait for them)
and the new status to `writer`. Bursts of pod events cost one reconcile (the work queue keeps one
pending reconcile per object), and status writes are coalesced; the decision after a pod finishes
reads memory, never the API server, and judges again only the tasks whose pods or entries changed
(`status.Memo`, `dag.Memo`). Pod names are deterministic per (run, task, attempt): a
restarted operator computes the same name for the next attempt, and creating a pod that exists is
a 409, never a second run of the task. Retries, deadlines and the TTL wake the run at their exact
moment through the core scheduler.

A schedule's reconcile finds its runs in the cache (an index on the parent pointer), asks
`schedules.decide` which run to create, which to delete and when the next tick is, and wakes at
that tick exactly. A run whose phase changes wakes its schedule (its concurrency policy and
history depend on it).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Hashable
from typing import Any

import pydantic
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType

from roadie.core import cache, client, events, labels, models, reconciler, sources
from roadie.core import children as core_children
from roadie.core import status as core_status
from roadie.core.controller import WAIT, Controller
from roadie.observatory import children, dag, metrics, report, schedules, starts, status, topology, tracing, writer
from roadie.observatory import models as obs_models

log = logging.getLogger(__name__)
API = obs_models.API
#: The Observatory's own source: runs are Observatories whose parent pointer names their schedule.
#: Cached as dicts rather than compact JSON (`Controller.compact`, below): every reconcile of a run
#: reads the whole object, and a 1,000-task run is some 400 KB of JSON, 3 ms to decode on an idle
#: core, a fifth of the operator's CPU in a thousand-task run; Observatories are few and read
#: often. Nothing here changes an object it read.
SOURCE = sources.register(sources.of_api(API))
WAITING = ("Pending", "Running")
NEXT = "next"
TTL = "expiry"
FLUSH = "status"
#: Seconds between two status writes of a run whose phase stays the same (see `writer`).
STATUS_INTERVAL = 1.0
#: Pod creates of one run in flight at once (`starts`).
PARALLEL_WRITES = 32
#: Task starts named in one event (an event message holds 1,024 characters; 63-character names
#: fit 15), gathered for a second: the events of a thousand-task run cost tens of requests, not a
#: thousand competing with the pods' own creates.
EVENT_BATCH = 15
STARTED = events.Digest(
    events.NORMAL,
    "TaskStarted",
    every=1.0,
    batch=EVENT_BATCH,
    one=lambda s: f"task {s.task} started (pod {s.pod})",
    many=lambda batch: f"{len(batch)} tasks started: {', '.join(s.task for s in batch)}",
)


@dataclasses.dataclass
class Runtime:
    """What lives as long as the operator: parsed specs and graphs, each running run's memo,
    events already sent for a schedule's repeated decisions, and the tracer (the pods created and
    not yet seen are `starter`'s)."""

    specs: dict[str, tuple[int, obs_models.ObservatorySpec, topology.Graph | None, str | None]] = dataclasses.field(
        default_factory=dict
    )
    #: each running run's task states, verdicts and status entries from its last reconcile
    memos: dict[str, status.Memo] = dataclasses.field(default_factory=dict)
    announced: dict[str, set[tuple[str, str]]] = dataclasses.field(default_factory=dict)
    tracing: tracing.Tracing = dataclasses.field(default_factory=tracing.Tracing)


runtime = Runtime()


def parse(body: dict[str, Any]) -> tuple[obs_models.ObservatorySpec | None, topology.Graph | None, str | None]:
    """The spec, its graph (None for a schedule) and the problem only the operator can see; built
    once per (uid, generation): a 2,000-task graph is not rebuilt on every pod event."""
    meta = body["metadata"]
    uid, generation = meta.get("uid") or meta["name"], int(meta.get("generation") or 0)
    known = runtime.specs.get(uid)
    if known is not None and known[0] == generation:
        return known[1], known[2], known[3]
    try:
        spec = obs_models.ObservatorySpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        return None, None, f"fix the spec: {error}"
    graph: topology.Graph | None = None
    problem = schedules.problem(spec)
    if problem is None and not spec.is_schedule:
        try:
            graph = topology.build(spec.tasks)
        except topology.GraphError as error:
            problem = f"{error.field}: {error}" if not error.cycle else str(error)
    runtime.specs[uid] = (generation, spec, graph, problem)
    return spec, graph, problem


async def reconcile(body: dict[str, Any]) -> float | None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return None  # its pods and runs go with it (ownerReferences)
    old = body.get("status") or {}
    now = models.now()
    spec, graph, problem = parse(body)
    if problem is not None or spec is None:
        new = status.invalid(old, problem or "invalid spec", generation=meta.get("generation"), now=now)
        result = await reconciler.finish(API, body, old, new, waiting_phases=())
        _wake_schedule(body, old, new)
        return result
    if spec.is_schedule:
        return await _schedule(body, spec, old, now)
    assert graph is not None
    return await _run(body, spec, graph, old, now)


# -- a run ---------------------------------------------------------------------------------------
async def _run(
    body: dict[str, Any],
    spec: obs_models.ObservatorySpec,
    graph: topology.Graph,
    old: dict[str, Any],
    now: datetime.datetime,
) -> float | None:
    meta = body["metadata"]
    uid, name = meta.get("uid") or meta["name"], meta["name"]
    memo = runtime.memos.setdefault(uid, status.Memo())
    stored, old = old, statuses.newest(_key(body), old)
    if old is stored and memo.last is not None and not core_status.changed(stored, memo.last):
        old = memo.last  # what was written last: the same values, as the objects the memo knows
    latest = status.latest_pods(cache.children(sources.PODS, body))
    states = status.observe_all(old, latest, unseen=starter.unseen(uid, latest), memo=memo)
    started = models.parse_timestamp(old.get("startTime"))
    decision = dag.decide(spec, graph, states, now=now, started=started, memo=memo.judged)
    await _stop(body, decision, latest)
    starter.retry(uid, body)
    for start in decision.start:
        manifest = children.pod(body, spec.tasks[graph.index[start.task]], start.attempt)
        starter.start(uid, body, start.task, start.attempt, manifest)
    rejected = starter.refused(uid)
    new = status.compute(old, decision, states, workflow=name, generation=meta.get("generation"), now=now, memo=memo)
    if rejected:
        new["message"] = f"{new.get('message')}; {rejected[0]}"
    memo.last = new
    if decision.finished:
        runtime.memos.pop(uid, None)  # a finished run decides nothing more: its memo is let go
    metrics.set_running(uid, 0 if decision.finished else sum(1 for v in decision.tasks.values() if v.active))

    expires = dag.expires_at(spec, models.parse_timestamp(new.get("completionTime")))
    if expires is not None and now >= expires:
        await reconciler.expire(API, body, old, new, expires, "ttlSecondsAfterFinished")
        _report(body, old, new, decision, states, now)
        return None
    reconciler.schedule(controller, body, now, {NEXT: decision.next_due, TTL: expires})
    statuses.submit(_key(body), stored, new)
    _report(body, old, new, decision, states, now)
    return WAIT if new.get("phase") in WAITING else None


def _key(body: dict[str, Any]) -> tuple[str, str]:
    return (body["metadata"].get("namespace") or "", body["metadata"]["name"])


async def _write_status(key: Hashable, new: dict[str, Any]) -> None:
    """One status write, against the object as the cache holds it now; a phase change is
    announced and wakes the schedule that made the run (it reads the run's stored phase)."""
    assert isinstance(key, tuple)
    body = controller.get(key[0], key[1])
    if body is None:
        return
    if not await starter.settled(body["metadata"].get("uid") or body["metadata"]["name"]):
        raise writer.NotYet("a pod it records is still to be created")
    body = controller.get(key[0], key[1]) or body  # as the cache holds it after the wait
    stored = body.get("status") or {}
    await reconciler.finish(API, body, stored, new, waiting_phases=WAITING)
    _wake_schedule(body, stored, new)


def _wake_at(key: Hashable, delay: float) -> None:
    assert isinstance(key, tuple)
    controller.at(key[0], key[1], FLUSH, models.now() + datetime.timedelta(seconds=delay))


statuses = writer.StatusWriter(STATUS_INTERVAL, _write_status, _wake_at)


async def _stop(body: dict[str, Any], decision: dag.Decision, latest: dict[str, Any]) -> None:
    namespace = body["metadata"].get("namespace")
    for stop in decision.stop:
        pod = latest.get(stop.task)
        if pod is None or status.attempt_of(pod) != stop.attempt or pod["metadata"].get("deletionTimestamp"):
            continue
        await core_children.delete(Pod, pod["metadata"]["name"], namespace, grace_period=0)
        await events.emit(
            body,
            events.WARNING,
            stop.reason,
            f"stopped task {stop.task} (attempt {stop.attempt}, pod {pod['metadata']['name']}): {stop.reason}",
        )


def _wake(body: dict[str, Any], delay: float) -> None:
    controller.requeue(body["metadata"].get("namespace"), body["metadata"]["name"], delay)


starter = starts.Starter(_wake, slots=PARALLEL_WRITES)


def _report(
    body: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    decision: dag.Decision,
    states: dict[str, dag.TaskState],
    now: datetime.datetime,
) -> None:
    """Events, metrics and spans for what this reconcile changed; events are posted in the
    background, so a burst of them never holds up the next pod."""
    found = report.changes(body["metadata"]["name"], old, new, decision, states, now=now)
    posts: list[tuple[str, str, str]] = []
    firsts: list[report.Started] = []
    for s in found.started:
        metrics.ATTEMPTS.labels("true" if s.attempt > 1 else "false").inc()
        wait = report.seconds(s.ready_at, now)
        if wait is not None:
            metrics.QUEUE_WAIT.observe(wait)
        if s.attempt > 1:
            posts.append((events.NORMAL, "TaskRetried", f"task {s.task}: attempt {s.attempt} started (pod {s.pod})"))
        else:
            firsts.append(s)
    for s in firsts:
        STARTED.add(_key(body), body, s)
    for e in found.ended:
        took = report.seconds(e.started, e.finished)
        if took is not None:
            metrics.TASK_SECONDS.labels(e.outcome).observe(took)
        runtime.tracing.attempt(body, e)
    for r in found.retries:
        posts.append((events.WARNING, "TaskAttemptFailed", f"task {r.task}: {r.message}"))
    for t in found.task_ends:
        metrics.TASKS.labels(t.phase).inc()
        if t.phase == "Failed":
            posts.append((events.WARNING, "TaskFailed", f"task {t.task} {t.message or 'failed'}"))
    if found.workflow_end:
        metrics.WORKFLOWS.labels(found.workflow_end).inc()
        runtime.tracing.run(body, new)  # the phase change event itself is reconciler.finish's
    for type_, reason, message in posts:
        events.emit_soon(body, type_, reason, message)


def _wake_schedule(body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
    """A run that changed phase wakes the schedule that made it."""
    if old.get("phase") == new.get("phase"):
        return
    _wake_parent(body)


def _wake_parent(body: dict[str, Any]) -> None:
    ref = labels.parse_parent_ref((body["metadata"].get("annotations") or {}).get(labels.PARENT))
    if ref is not None and ref[0] == API.kind:
        controller.requeue(ref[1], ref[2])


# -- a schedule ----------------------------------------------------------------------------------
async def _schedule(
    body: dict[str, Any], spec: obs_models.ObservatorySpec, old: dict[str, Any], now: datetime.datetime
) -> float | None:
    meta = body["metadata"]
    namespace, name, uid = meta.get("namespace"), meta["name"], meta.get("uid") or meta["name"]
    runs = schedules.runs_of(cache.children(SOURCE, body), meta.get("uid") or "")
    decision = schedules.decide(
        spec,
        name=name,
        created=models.parse_timestamp(meta.get("creationTimestamp")) or now,
        last_schedule_time=models.parse_timestamp(old.get("lastScheduleTime")),
        runs=runs,
        now=now,
    )
    resource = client.resource(API)
    for doomed in decision.delete:
        await core_children.delete(resource, doomed, namespace, cascade=CascadeType.BACKGROUND)
    if decision.create is not None:
        tick = models.timestamp(decision.create.tick)
        manifest = children.run(body, spec, decision.create.name, tick)
        try:
            if await core_children.create_if_absent(manifest, parent=body):
                # the create's response is in the cache already, so its watch event looks like an
                # echo and wakes nothing: the run's first reconcile is asked for here
                controller.requeue(namespace, decision.create.name)
                await events.emit(
                    body, events.NORMAL, "RunCreated", f"created run {decision.create.name} for tick {tick}"
                )
        except ApiError as error:
            if error.status.code not in core_children.REJECTED:
                raise
            text = f"the API server refused run {decision.create.name}: {error.status.message}"
            decision.events.append(("RunRejected", text))
            decision.message = text
    if decision.delete:
        await events.emit(body, events.NORMAL, "RunsDeleted", f"deleted {', '.join(decision.delete)}")
    seen = runtime.announced.setdefault(uid, set())
    for reason, message in decision.events:
        if (reason, message) not in seen:
            seen.add((reason, message))
            await events.emit(body, events.WARNING if reason == "MissedSchedule" else events.NORMAL, reason, message)
    if decision.next_due is not None:
        controller.at(namespace, name, NEXT, decision.next_due)
    else:
        controller.cancel(namespace, name, NEXT)
    new = status.schedule(old, decision, suspended=spec.suspend, generation=meta.get("generation"), now=now)
    await reconciler.finish(API, body, old, new, waiting_phases=())
    return None


# -- the operator's lifetime ---------------------------------------------------------------------
async def deleted(body: dict[str, Any]) -> None:
    """The Observatory is gone: forget what memory holds of it, and tell its schedule."""
    meta = body["metadata"]
    uid = meta.get("uid") or meta["name"]
    runtime.specs.pop(uid, None)
    starter.forget(uid)
    runtime.memos.pop(uid, None)
    statuses.forget(_key(body))
    runtime.announced.pop(uid, None)
    metrics.forget(uid)
    for purpose in (NEXT, TTL, FLUSH):
        controller.cancel(meta.get("namespace"), meta["name"], purpose)
    _wake_parent(body)


async def startup() -> None:
    runtime.tracing = tracing.build()


async def shutdown() -> None:
    await statuses.close()
    runtime.tracing.shutdown()


controller = Controller(
    api=API,
    reconcile=reconcile,
    children=(sources.PODS,),
    deleted=deleted,
    indexes={cache.PARENT_INDEX: cache.parent_index},
    compact=False,
)
