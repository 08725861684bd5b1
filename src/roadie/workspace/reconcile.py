"""Workspace reconcile: the claim, the layout made once, the workspace pods, the schedule and the
retention policy, then one status write.

Level-based: every step reads the cache and makes the world as the spec says, so one function
serves creation, updates, restarts and deadlines. The schedule is one deadline per workspace (the
core scheduler wakes it exactly on the tick) and its decision is CronJob's (`roadie.core.cron`):
a tick missed while the operator was down runs once, late, never several times. An automatic
Snapshot's name is fixed by the tick, so a tick is never snapshotted twice.

Deleting a Workspace deletes its Snapshots (their data goes with the volume, so no engine runs) and
its claim through the claim's owner reference, unless `retainClaim` keeps it (the owner reference
is removed first, and the Snapshots' data stays on the volume).
"""

from __future__ import annotations

import datetime
from typing import Any

import pydantic
from lightkube.core.exceptions import ApiError
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.types import PatchType

from roadie import settings as settings_mod
from roadie.core import (
    cache,
    client,
    conditions,
    cron,
    diagnose,
    durations,
    events,
    finalizers,
    models,
    reconciler,
    sources,
)
from roadie.core import children as core_children
from roadie.core.controller import WAIT, Controller
from roadie.workspace import children, retention, snapshot_reconcile, status
from roadie.workspace import models as ws_models

API = ws_models.WORKSPACE_API
SNAPSHOTS = snapshot_reconcile.SNAPSHOTS
FINALIZER = "jvs.io/workspace"
WAITING = ("Pending", "Creating", "Updating", "Terminating")
AUTO, RETENTION = "auto-snapshot", "retention"


def _cfg() -> settings_mod.WorkspaceSettings:
    return settings_mod.current().workspace


def _parse(body: dict[str, Any]) -> ws_models.WorkspaceSpec:
    spec = ws_models.WorkspaceSpec.model_validate(body.get("spec") or {})
    if spec.autoSnapshot and spec.autoSnapshot.enabled:
        cron.validate(spec.autoSnapshot.schedule or "")
    if spec.retentionPolicy:
        durations.parse(spec.retentionPolicy.keepMinAge)
    return spec


async def reconcile(body: dict[str, Any]) -> float | None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    old = body.get("status") or {}
    now = models.now()
    seen = status.WorkspaceSeen(generation=meta.get("generation"), claim_name=children.claim_name(name))
    if meta.get("deletionTimestamp"):
        return await _terminate(body, old, seen)
    try:
        spec = _parse(body)
    except (pydantic.ValidationError, cron.CronError, durations.DurationError) as error:
        seen.failure = ("InvalidSpec", f"fix the spec: {error}")
        return await _finish(body, old, seen)
    seen.replicas = spec.replicas
    if not finalizers.has(body, FINALIZER):
        await finalizers.add(API, body, FINALIZER)

    try:
        volume = children.juicefs_volume(body, spec)
        if volume is not None:
            await core_children.create_if_absent(volume)
        manifest = children.claim(body, spec)
        await core_children.create_if_absent(manifest, body)
    except core_children.ForeignObjectError as error:
        seen.failure = ("NameConflict", str(error))
        return await _finish(body, old, seen)
    except ApiError as error:
        if error.status.code not in core_children.REJECTED:
            raise
        seen.failure = ("ClaimRejected", f"the API server refused the claim: {error.status.message}")
        return await _finish(body, old, seen)
    claim = core_children.cached(manifest)
    seen.claim_problem = diagnose.claim_problem(claim)
    if seen.claim_problem:
        return await _finish(body, old, seen)

    initialized = conditions.is_true(old.get("conditions"), status.INITIALIZED)
    if not initialized:
        seen.init = await _initialize(body, spec)
        if seen.init.state != "succeeded":
            return await _finish(body, old, seen)
    else:
        await _tidy_init(body)

    deployment = await core_children.apply(children.deployment(body, spec, _cfg()), body)
    seen.ready_replicas = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
    if seen.ready_replicas < spec.replicas:
        seen.pod_problems = diagnose.pod_problems(body) + diagnose.deployment_problems(deployment)

    snaps = [s for s in snapshot_reconcile.of_workspace(namespace, name) if not s["metadata"].get("deletionTimestamp")]
    _observe_snapshots(seen, snaps)
    await _schedule(body, spec, old, seen, snaps, now)
    await _retain(body, spec, seen, snaps, now)
    return await _finish(body, old, seen)


async def _initialize(body: dict[str, Any], spec: ws_models.WorkspaceSpec) -> status.Outcome:
    """Lay the volume out once (`roadie jvs init`), then restore `initialSnapshot` if one is named."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    steps = [("init", ["init"])]
    if spec.initialSnapshot:
        steps.append(("initial-restore", children.restore_args(spec.initialSnapshot, None)))
    outcome = status.Outcome("absent")
    for operation, args in steps:
        job_name = children.init_job_name(name) if operation == "init" else children.job_name(name, operation)
        job = cache.get(sources.JOBS, namespace, job_name)
        pods = [p for p in cache.children(sources.PODS, body) if _of_job(p, job_name)]
        outcome = status.outcome(job, pods)
        if outcome.state == "absent":
            manifest = children.engine_job(
                body, name=job_name, operation=operation, workspace=name, args=args, cfg=_cfg()
            )
            await core_children.create_if_absent(manifest, body)
            return status.Outcome("pending")
        if outcome.state != "succeeded":
            return outcome
    return outcome


def _of_job(pod: dict[str, Any], job_name: str) -> bool:
    found = pod["metadata"].get("labels") or {}
    return job_name in (found.get("job-name"), found.get("batch.kubernetes.io/job-name"))


async def _tidy_init(body: dict[str, Any]) -> None:
    for job in cache.children(sources.JOBS, body):
        if not job["metadata"].get("deletionTimestamp"):
            await core_children.delete(Job, job["metadata"]["name"], job["metadata"]["namespace"],
                                       cascade=snapshot_reconcile.BACKGROUND)  # fmt: skip


def _owns_data(snap: dict[str, Any]) -> bool:
    return not (snap.get("spec") or {}).get("sourceSnapshot")


def _observe_snapshots(seen: status.WorkspaceSeen, snaps: list[dict[str, Any]]) -> None:
    """Count, last time, and the snapshot main/ now holds: the latest of a full snapshot of main/
    and an in-place restore."""
    moments: list[tuple[datetime.datetime, str]] = []
    for snap in snaps:
        st, spec = snap.get("status") or {}, snap.get("spec") or {}
        if st.get("phase") != "Ready" or not st.get("snapshotID"):
            continue
        if _owns_data(snap):
            seen.snapshot_count += 1
            made = models.parse_timestamp(st.get("createdAt"))
            if made and (seen.last_snapshot is None or made > seen.last_snapshot):
                seen.last_snapshot = made
            if not spec.get("partialPaths") and made:
                moments.append((models.parse_timestamp(st.get("completedAt")) or made, st["snapshotID"]))
        restore = st.get("restoreStatus") or {}
        if restore.get("phase") == "Completed" and not restore.get("worktreeName") and restore.get("completedAt"):
            when = models.parse_timestamp(restore["completedAt"])
            if when:
                moments.append((when, st["snapshotID"]))
    if moments:
        seen.current = max(moments)[1]


def _tick_name(tick: datetime.datetime) -> str:
    return tick.strftime("%Y%m%d-%H%M")


async def _schedule(
    body: dict[str, Any],
    spec: ws_models.WorkspaceSpec,
    old: dict[str, Any],
    seen: status.WorkspaceSeen,
    snaps: list[dict[str, Any]],
    now: datetime.datetime,
) -> None:
    meta = body["metadata"]
    auto = spec.autoSnapshot
    if auto is None or not auto.enabled or not auto.schedule:
        controller.cancel(meta["namespace"], meta["name"], AUTO)
        return
    last = models.parse_timestamp(old.get("lastScheduleTime"))
    created = models.parse_timestamp(meta.get("creationTimestamp")) or now
    due = cron.due(auto.schedule, now=now, last=last, created=created)
    seen.last_schedule = last
    if due.tick is not None:
        name = children.auto_snapshot_name(spec, meta["name"], _tick_name(due.tick))
        await _make_room(body, spec, seen, snaps, auto.maxSnapshots)
        made = await core_children.create_if_absent(
            children.auto_snapshot(body, spec, name, models.timestamp(due.tick)), body
        )
        if made:
            await events.emit(
                body, events.NORMAL, "AutoSnapshot", f"created Snapshot {name} for the tick at {due.tick}"
            )
        seen.last_schedule = due.tick
    seen.next_snapshot = due.next
    seen.schedule_note = (True, "Scheduled", f"next automatic snapshot at {models.timestamp(due.next)}")
    controller.at(meta["namespace"], meta["name"], AUTO, due.next)


async def _make_room(
    body: dict[str, Any],
    spec: ws_models.WorkspaceSpec,
    seen: status.WorkspaceSeen,
    snaps: list[dict[str, Any]],
    limit: int,
) -> None:
    """Remove the oldest automatic snapshots until one more fits under `maxSnapshots` (never the
    workspace's current snapshot, nor one a retention tag protects)."""
    keep_tags = set(spec.retentionPolicy.keepTags) if spec.retentionPolicy else set()
    autos = sorted(
        (s for s in snaps if (s["metadata"].get("labels") or {}).get(children.AUTO_LABEL) == "true"),
        key=lambda s: (s["metadata"].get("creationTimestamp") or "", s["metadata"]["name"]),
    )
    excess = len(autos) - (limit - 1)
    for snap in autos:
        if excess <= 0:
            break
        st = snap.get("status") or {}
        if st.get("snapshotID") and st.get("snapshotID") == seen.current:
            continue
        if keep_tags & set((snap.get("spec") or {}).get("tags") or []):
            continue
        await _delete_snapshot(body, snap, f"autoSnapshot.maxSnapshots is {limit}")
        snaps.remove(snap)
        excess -= 1


async def _delete_snapshot(body: dict[str, Any], snap: dict[str, Any], why: str) -> None:
    name = snap["metadata"]["name"]
    if await core_children.delete(snapshot_reconcile.client_resource(), name, snap["metadata"]["namespace"]):
        await events.emit(body, events.NORMAL, "SnapshotRemoved", f"removed Snapshot {name}: {why}")


async def _retain(
    body: dict[str, Any],
    spec: ws_models.WorkspaceSpec,
    seen: status.WorkspaceSeen,
    snaps: list[dict[str, Any]],
    now: datetime.datetime,
) -> None:
    meta = body["metadata"]
    policy = spec.retentionPolicy
    if policy is None:
        controller.cancel(meta["namespace"], meta["name"], RETENTION)
        return
    owners = [s for s in snaps if _owns_data(s)]
    decision, wake = retention.decide(owners, policy, now, current=seen.current)
    for snap in decision:
        await _delete_snapshot(body, snap, "the retention policy")
        seen.snapshot_count -= 1 if (snap.get("status") or {}).get("phase") == "Ready" else 0
    if wake is not None:
        controller.at(meta["namespace"], meta["name"], RETENTION, wake)
    else:
        controller.cancel(meta["namespace"], meta["name"], RETENTION)


async def _terminate(body: dict[str, Any], old: dict[str, Any], seen: status.WorkspaceSeen) -> float | None:
    if not finalizers.has(body, FINALIZER):
        return None
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    controller.cancel(namespace, name, AUTO)
    controller.cancel(namespace, name, RETENTION)
    seen.terminating = True
    snaps = snapshot_reconcile.of_workspace(namespace, name)
    for snap in snaps:
        if not snap["metadata"].get("deletionTimestamp"):
            await core_children.delete(snapshot_reconcile.client_resource(), snap["metadata"]["name"], namespace)
    if snaps:
        new = status.workspace(old, seen)
        await reconciler.finish(API, body, old, {**new, "snapshotCount": len(snaps)}, waiting_phases=WAITING)
        return WAIT
    spec_raw = body.get("spec") or {}
    if spec_raw.get("retainClaim"):
        await _disown_claim(namespace, children.claim_name(name))
    elif spec_raw.get("juiceFsConfig"):
        await core_children.delete(PersistentVolume, children.juicefs_volume_name(namespace, name))
    await finalizers.remove(API, body, FINALIZER)
    return None


async def _disown_claim(namespace: str, claim: str) -> None:
    try:
        await client.get().patch(
            PersistentVolumeClaim, claim, {"metadata": {"ownerReferences": None}}, namespace=namespace,
            patch_type=PatchType.MERGE,
        )  # fmt: skip
    except ApiError as error:
        if error.status.code != 404:
            raise


async def _finish(body: dict[str, Any], old: dict[str, Any], seen: status.WorkspaceSeen) -> float | None:
    new = status.workspace(old, seen)
    return await reconciler.finish(API, body, old, new, waiting_phases=WAITING)


def _wake(namespace: str, name: str) -> None:
    controller.requeue(namespace, name)


controller = Controller(
    api=API,
    reconcile=reconcile,
    children=(sources.PVCS, sources.DEPLOYMENTS, sources.JOBS, sources.PODS),
)
workspace_controller = controller
snapshot_controller = snapshot_reconcile.controller
snapshot_reconcile.wake_workspace = _wake
CONTROLLERS = [workspace_controller, snapshot_controller]
