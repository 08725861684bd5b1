"""Snapshot reconcile: run the engine in Jobs, one per operation, and carry their results into status.

A Snapshot without `sourceSnapshot` takes a snapshot of its workspace's `main/` (Job
`<name>-jvs-create`) and owns its data: a finalizer runs `roadie jvs delete` (Job `<name>-jvs-delete`)
before the object goes. With `restoreOnCreate` it is then restored (Job `<name>-jvs-restore`) into
`worktrees/<restoreWorktree>/`, or into `main/` when no worktree is named. A Snapshot with
`sourceSnapshot` (an ID, tag, ID prefix, or a Snapshot object's name) takes nothing and owns nothing:
with `restoreOnCreate` it restores that snapshot, which is how a user rolls a workspace back from
kubectl; without, it verifies it.

Each Job's name is fixed by the Snapshot and the operation, and a Job is created only while its
operation has no result in status, so a restarted operator finds the Job it made rather than making
a second one. Results are read from the engine pod's termination message; a Job is deleted only
after its result is in the status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
from lightkube.resources.batch_v1 import Job
from lightkube.types import CascadeType

from roadie import settings as settings_mod
from roadie.core import cache, client, conditions, events, finalizers, models, reconciler, sources
from roadie.core import children as core_children
from roadie.core.controller import WAIT, Controller
from roadie.workspace import children, status
from roadie.workspace import models as ws_models

API = ws_models.SNAPSHOT_API
WORKSPACES = sources.of_api(ws_models.WORKSPACE_API)
SNAPSHOTS = sources.of_api(API)
FINALIZER = "jvs.io/snapshot-data"
WORKSPACE_INDEX = "workspace"
WAITING = ("Pending", "InProgress")
#: A workspace that does not exist yet, or is not laid out yet: look again this often.
RETRY_SECONDS = 5.0
BACKGROUND = CascadeType.BACKGROUND
#: Set by the Workspace controller: wakes a workspace when one of its snapshots changes.
wake_workspace: Callable[[str, str], None] = lambda namespace, name: None  # noqa: E731


def client_resource() -> Any:
    return client.resource(API)


def workspace_key(obj: dict[str, Any]) -> list[str]:
    workspace = (obj.get("spec") or {}).get("workspace")
    return [f"{obj['metadata'].get('namespace')}/{workspace}"] if workspace else []


def of_workspace(namespace: str, workspace: str) -> list[dict[str, Any]]:
    return cache.by_index(SNAPSHOTS, WORKSPACE_INDEX, f"{namespace}/{workspace}")


def _cfg() -> settings_mod.WorkspaceSettings:
    return settings_mod.current().workspace


def _run(body: dict[str, Any], operation: str) -> tuple[dict[str, Any] | None, status.Outcome]:
    name = children.job_name(body["metadata"]["name"], operation)
    job = cache.get(sources.JOBS, body["metadata"]["namespace"], name)
    pods = [
        p
        for p in cache.children(sources.PODS, body)
        if (p["metadata"].get("labels") or {}).get("job-name") == name
        or (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == name
    ]
    return job, status.outcome(job, pods)


def _node(workspace: dict[str, Any]) -> str | None:
    """The node of the workspace's pods when its claim can only be mounted there."""
    claim = cache.get(
        sources.PVCS, workspace["metadata"]["namespace"], children.claim_name(workspace["metadata"]["name"])
    )
    modes = ((claim or {}).get("spec") or {}).get("accessModes") or ["ReadWriteOnce"]
    if "ReadWriteOnce" not in modes and "ReadWriteOncePod" not in modes:
        return None
    for pod in cache.children(sources.PODS, workspace):
        if (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/component") != children.WORKSPACE_COMPONENT:
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        if node and not pod["metadata"].get("deletionTimestamp"):
            return str(node)
    return None


async def _start(body: dict[str, Any], workspace: dict[str, Any], operation: str, args: list[str]) -> None:
    manifest = children.engine_job(
        body,
        name=children.job_name(body["metadata"]["name"], operation),
        operation=operation,
        workspace=workspace["metadata"]["name"],
        args=args,
        cfg=_cfg(),
        node=_node(workspace),
    )
    await core_children.create_if_absent(manifest, body)


def resolve_source(namespace: str, spec: ws_models.SnapshotSpec) -> str | None:
    """`sourceSnapshot` as the engine takes it: a Snapshot object's name becomes its snapshot ID."""
    ref = spec.sourceSnapshot
    if ref is None:
        return None
    named = cache.get(SNAPSHOTS, namespace, ref)
    if named is not None and (named.get("spec") or {}).get("workspace") == spec.workspace:
        return (named.get("status") or {}).get("snapshotID") or None
    return ref


def _fail(new: dict[str, Any], reason: str, message: str, generation: int | None) -> dict[str, Any]:
    new.update(phase="Failed", message=message)
    return status.with_condition(new, status.READY, False, reason, message, generation)


async def reconcile(body: dict[str, Any]) -> float | None:
    meta = body["metadata"]
    namespace, _name = meta["namespace"], meta["name"]
    old = body.get("status") or {}
    gen = meta.get("generation")
    new: dict[str, Any] = {**old, "observedGeneration": gen}
    try:
        spec = ws_models.SnapshotSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        return await _finish(body, old, _fail(new, "InvalidSpec", f"fix the spec: {error}", gen))
    if meta.get("deletionTimestamp"):
        return await _delete(body, spec, old)
    if old.get("phase") == "Failed":
        return await _finish(body, old, new)

    workspace = cache.get(WORKSPACES, namespace, spec.workspace)
    if workspace is None or workspace["metadata"].get("deletionTimestamp"):
        message = (
            f"Workspace {spec.workspace!r} does not exist in namespace {namespace}: create it or fix spec.workspace"
        )
        new.update(phase="Pending", message=message)
        status.with_condition(new, status.READY, False, "WorkspaceNotFound", message, gen)
        return await _finish(body, old, new, again=RETRY_SECONDS)
    if not _laid_out(workspace):
        new.update(phase="Pending", message=f"waiting for Workspace {spec.workspace!r} to be laid out")
        return await _finish(body, old, new, again=RETRY_SECONDS)

    owns = spec.sourceSnapshot is None
    if owns and not finalizers.has(body, FINALIZER):
        await finalizers.add(API, body, FINALIZER)

    if owns:
        done = await _create(body, spec, workspace, old, new, gen)
        if not done:
            return await _finish(body, old, new)
        ref: str | None = new.get("snapshotID")
    else:
        ref = resolve_source(namespace, spec)
        if ref is None:
            message = f"Snapshot {spec.sourceSnapshot!r} has no snapshot ID yet"
            new.update(phase="Pending", message=message)
            return await _finish(body, old, new, again=RETRY_SECONDS)

    if spec.restoreOnCreate:
        assert ref is not None
        await _restore(body, spec, workspace, ref, old, new, gen)
    elif not owns:
        await _verify(body, workspace, ref or "", new, gen)
    result = await _finish(body, old, new)
    if new.get("phase") in ("Ready", "Failed"):
        await _tidy(body, new)
    return result


def _laid_out(workspace: dict[str, Any]) -> bool:
    return conditions.is_true((workspace.get("status") or {}).get("conditions"), status.INITIALIZED)


async def _create(
    body: dict[str, Any],
    spec: ws_models.SnapshotSpec,
    workspace: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    gen: int | None,
) -> bool:
    """Take the snapshot (once); True when it exists."""
    if old.get("snapshotID") and old.get("completedAt"):
        return True
    job_name = children.job_name(body["metadata"]["name"], "create")
    _job, run = _run(body, "create")
    if run.state == "absent":
        if old.get("jobName") == job_name:
            _fail(new, "EngineJobLost", f"Job {job_name} disappeared before it reported; create another Snapshot", gen)
            return False
        await _start(body, workspace, "create", children.snapshot_args(spec))
        new.update(phase="Pending", message="the engine Job is starting", jobName=job_name)
        return False
    new["jobName"] = job_name
    if run.state == "pending":
        new.update(phase="Pending", message="the engine Job is starting")
        return False
    if run.state == "running":
        new.update(phase="InProgress", message="taking the snapshot")
        return False
    if run.state == "failed":
        _fail(new, run.reason, f"the snapshot failed: {run.message}", gen)
        return False
    new.update(status.snapshot_result(run.result))
    if not spec.restoreOnCreate:
        message = f"snapshot {new['snapshotID']}: {new.get('fileCount', 0)} files, {new.get('size', 0)} bytes"
        new.update(phase="Ready", message=message)
        status.with_condition(new, status.READY, True, "Ready", message, gen)
    return True


async def _restore(
    body: dict[str, Any],
    spec: ws_models.SnapshotSpec,
    workspace: dict[str, Any],
    ref: str,
    old: dict[str, Any],
    new: dict[str, Any],
    gen: int | None,
) -> None:
    target = f"worktrees/{spec.restoreWorktree}/" if spec.restoreWorktree else "main/"
    previous = old.get("restoreStatus") or {}
    if previous.get("phase") in ("Completed", "Failed"):
        return
    restore = {"worktreeName": spec.restoreWorktree, "phase": "Pending", "startedAt": previous.get("startedAt")}
    job_name = children.job_name(body["metadata"]["name"], "restore")
    _job, run = _run(body, "restore")
    new["restoreStatus"] = restore
    if run.state == "absent":
        await _start(body, workspace, "restore", children.restore_args(ref, spec.restoreWorktree))
        new.update(phase="InProgress", message=f"restoring {ref} into {target}", jobName=job_name)
        return
    new["jobName"] = job_name
    if run.state in ("pending", "running"):
        if run.state == "running":
            restore.update(phase="InProgress", startedAt=restore["startedAt"] or models.timestamp(models.now()))
        new.update(phase="InProgress", message=f"restoring {ref} into {target}")
        return
    if run.state == "failed":
        restore.update(phase="Failed", completedAt=models.timestamp(models.now()))
        _fail(new, run.reason, f"restoring {ref} into {target} failed: {run.message}", gen)
        return
    result = run.result
    restore.update(
        phase="Completed",
        startedAt=status.stamp(result.get("startedAt")) or restore["startedAt"],
        completedAt=status.stamp(result.get("completedAt")),
    )
    if spec.sourceSnapshot is not None:
        new.update(snapshotID=result.get("snapshotID"), size=result.get("size"), fileCount=result.get("fileCount"))
    message = f"restored {result.get('snapshotID')} into {target}"
    new.update(phase="Ready", message=message)
    status.with_condition(new, status.READY, True, "Restored", message, gen)


async def _verify(
    body: dict[str, Any], workspace: dict[str, Any], ref: str, new: dict[str, Any], gen: int | None
) -> None:
    if new.get("integrityState") and new.get("phase") == "Ready":
        return
    job_name = children.job_name(body["metadata"]["name"], "verify")
    _job, run = _run(body, "verify")
    if run.state == "absent":
        await _start(body, workspace, "verify", ["verify", ref])
        new.update(phase="Pending", message=f"verifying {ref}", jobName=job_name)
        return
    if run.state in ("pending", "running"):
        new.update(phase="InProgress" if run.state == "running" else "Pending", message=f"verifying {ref}")
        return
    if run.state == "failed" and run.result.get("integrityState") != "Corrupt":
        _fail(new, run.reason, f"verifying {ref} failed: {run.message}", gen)
        return
    new.update(status.snapshot_result(run.result))
    if run.result.get("integrityState") == "Corrupt":
        _fail(new, "Corrupt", f"snapshot {ref} is corrupt: {run.result.get('problems')}", gen)
        return
    message = f"snapshot {new.get('snapshotID')} verified"
    new.update(phase="Ready", message=message)
    status.with_condition(new, status.READY, True, "Verified", message, gen)


async def _tidy(body: dict[str, Any], new: dict[str, Any]) -> None:
    """Delete the finished Jobs whose results the status now holds."""
    for job in cache.children(sources.JOBS, body):
        if (job["metadata"].get("labels") or {}).get(children.OPERATION_LABEL) == "delete":
            continue
        if not job["metadata"].get("deletionTimestamp"):
            await core_children.delete(Job, job["metadata"]["name"], job["metadata"]["namespace"], cascade=BACKGROUND)


async def _delete(body: dict[str, Any], spec: ws_models.SnapshotSpec, old: dict[str, Any]) -> float | None:
    """Remove the snapshot's data from the volume, then let the object go."""
    if not finalizers.has(body, FINALIZER):
        return None
    meta = body["metadata"]
    namespace = meta["namespace"]
    workspace = cache.get(WORKSPACES, namespace, spec.workspace)
    snapshot_id = old.get("snapshotID")
    _job, created = _run(body, "create")
    if not snapshot_id and created.state == "succeeded":
        snapshot_id = created.result.get("snapshotID")
    if not snapshot_id and created.state in ("pending", "running"):
        return WAIT  # the data being written is deleted once it is there
    if not snapshot_id or workspace is None or workspace["metadata"].get("deletionTimestamp"):
        # nothing was written, or the workspace (and with it the volume, or the kept claim) goes its own way
        await finalizers.remove(API, body, FINALIZER)
        return None
    job, run = _run(body, "delete")
    if run.state == "absent":
        await _start(body, workspace, "delete", ["delete", snapshot_id])
        return WAIT
    if run.state in ("pending", "running"):
        return WAIT
    if run.state == "failed" and run.reason != "SnapshotNotFound":
        await events.emit(
            body, events.WARNING, "DeleteFailed", f"deleting {snapshot_id} failed: {run.message}; retrying"
        )
        assert job is not None
        await core_children.delete(Job, job["metadata"]["name"], namespace, cascade=BACKGROUND)
        return 30.0
    if run.state == "succeeded":
        freed = run.result.get("freedBytes")
        await events.emit(body, events.NORMAL, "Deleted", f"deleted snapshot {snapshot_id} ({freed} bytes freed)")
    await finalizers.remove(API, body, FINALIZER)
    wake_workspace(namespace, spec.workspace)
    return None


async def _finish(
    body: dict[str, Any], old: dict[str, Any], new: dict[str, Any], *, again: float | None = None
) -> float | None:
    waiting = WAITING if again is None else ()  # a deadline of its own: nothing to wait on
    result = await reconciler.finish(API, body, old, new, waiting_phases=waiting, again=again)
    if old.get("phase") != new.get("phase") or old.get("restoreStatus") != new.get("restoreStatus"):
        wake_workspace(body["metadata"]["namespace"], (body.get("spec") or {}).get("workspace") or "")
    return result


async def deleted(body: dict[str, Any]) -> None:
    wake_workspace(body["metadata"]["namespace"], (body.get("spec") or {}).get("workspace") or "")


controller = Controller(
    api=API,
    reconcile=reconcile,
    children=(sources.JOBS, sources.PODS),
    deleted=deleted,
    indexes={WORKSPACE_INDEX: workspace_key},
)
