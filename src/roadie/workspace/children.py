"""Pure builders: a Workspace or Snapshot in, the manifests of their children out (no API calls here).

A Workspace owns one claim (`<name>-data`), a Deployment of `replicas` workspace pods working in
`main/` of it (`<name>-workspace`), and the engine Job that lays the volume out once
(`<name>-jvs-init`). A Snapshot owns the engine Jobs that act for it, named from the Snapshot and
the operation (`<snapshot>-jvs-create`, `-restore`, `-delete`): a name the API server refuses twice,
so an operator restarted at any moment never starts a second run of the same operation.

Every engine pod carries `app.kubernetes.io/component=snapshot-engine`, runs `roadie jvs ...` from
the operator's own image with backoffLimit 0 (an engine run is never retried behind the
controller's back: its result is read from the pod's termination message), and mounts the
workspace's claim where the workspace pods mount it.
"""

from __future__ import annotations

from typing import Any

from roadie.core import children as core_children
from roadie.core import naming
from roadie.workspace import models

WORKSPACE, SNAPSHOT = "Workspace", "Snapshot"
ENGINE_COMPONENT = "snapshot-engine"
WORKSPACE_COMPONENT = "workspace"
WORKSPACE_LABEL = "jvs.io/workspace"
OPERATION_LABEL = "jvs.io/operation"
#: Set on Snapshots the schedule made: they count against `autoSnapshot.maxSnapshots`.
AUTO_LABEL = "jvs.io/auto-snapshot"
TICK_ANNOTATION = "jvs.io/schedule-tick"
TERMINATION_LOG = "/dev/termination-log"
JUICEFS_DRIVER = "csi.juicefs.com"
HOSTNAME = "kubernetes.io/hostname"

APPLY = ("create", "patch")
WATCH = ("list", "watch")
#: What the reconciles do to each kind of child, from which the operator's RBAC is generated
#: (`roadie.rbac`): claims, Deployments and Jobs are made and removed, Jobs never patched (a Job's
#: template is immutable), claims patched to drop their owner when a Workspace keeps its claim, and
#: automatic Snapshots created and pruned. PersistentVolumes are made for JuiceFS volumes only.
ACCESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "persistentvolumeclaims", (*WATCH, *APPLY, "get", "delete")),
    ("", "persistentvolumes", (*APPLY, "get", "delete")),
    ("apps", "deployments", (*WATCH, *APPLY, "get", "delete")),
    ("batch", "jobs", (*WATCH, "create", "get", "delete")),
    ("", "pods", WATCH),
    (models.GROUP, "snapshots", (*WATCH, "create", "get", "delete")),
)


def claim_name(workspace: str) -> str:
    return naming.child_name(workspace, "data")


def deployment_name(workspace: str) -> str:
    return naming.child_name(workspace, "workspace")


def init_job_name(workspace: str) -> str:
    return naming.child_name(workspace, "jvs-init")


def job_name(snapshot: str, operation: str) -> str:
    return naming.child_name(snapshot, f"jvs-{operation}")


def juicefs_volume_name(namespace: str, workspace: str) -> str:
    return naming.dns_label(f"jvs-{namespace}-{workspace}")


def _meta(body: Any, kind: str, name: str, component: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    return core_children.metadata(
        name=name,
        namespace=body["metadata"]["namespace"],
        kind=kind,
        instance=body["metadata"]["name"],
        component=component,
        parent=body,
        extra_labels=extra,
    )


def access_modes(spec: models.WorkspaceSpec) -> list[str]:
    """ReadWriteMany where several pods share the volume (JuiceFS, or more than one replica)."""
    return ["ReadWriteMany"] if spec.juiceFsConfig is not None or spec.replicas > 1 else ["ReadWriteOnce"]


def static_juicefs(spec: models.WorkspaceSpec) -> bool:
    """A JuiceFS volume of its own (static provisioning) when no StorageClass is named; with one,
    the class (a JuiceFS class carries its own secret and mount options) provisions it."""
    return spec.juiceFsConfig is not None and not spec.storageClassName


def claim(body: Any, spec: models.WorkspaceSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    claim_spec: dict[str, Any] = {
        "accessModes": access_modes(spec),
        "resources": {"requests": {"storage": spec.storage}},
    }
    if static_juicefs(spec):
        claim_spec["storageClassName"] = ""  # bound to its own static PersistentVolume, below
        claim_spec["volumeName"] = juicefs_volume_name(body["metadata"]["namespace"], name)
    elif spec.storageClassName:
        claim_spec["storageClassName"] = spec.storageClassName
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(body, WORKSPACE, claim_name(name), "storage", {WORKSPACE_LABEL: naming.label_value(name)}),
        "spec": claim_spec,
    }


def juicefs_volume(body: Any, spec: models.WorkspaceSpec) -> dict[str, Any] | None:
    """The static PersistentVolume the JuiceFS CSI driver mounts (its documented static provisioning):
    `source` as the `metaurl` volume attribute, `secretsRef` as the node-publish secret, `metaDir` as
    `subdir=` and `cacheDir` as `cache-dir=` among the mount options, after `mountOptions`."""
    config = spec.juiceFsConfig
    if config is None or not static_juicefs(spec):
        return None
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    options = list(spec.mountOptions)
    if config.metaDir:
        options.append(f"subdir={config.metaDir}")
    if config.cacheDir:
        options.append(f"cache-dir={config.cacheDir}")
    csi: dict[str, Any] = {
        "driver": JUICEFS_DRIVER,
        "volumeHandle": juicefs_volume_name(namespace, name),
        "fsType": "juicefs",
        "volumeAttributes": {"metaurl": config.source},
    }
    if config.secretsRef is not None:
        csi["nodePublishSecretRef"] = {"name": config.secretsRef.name, "namespace": namespace}
        if config.secretsRef.keys:
            csi["volumeAttributes"]["secretKeys"] = ",".join(config.secretsRef.keys)
    meta = core_children.metadata(
        name=juicefs_volume_name(namespace, name),
        namespace=None,
        kind=WORKSPACE,
        instance=name,
        component="storage",
        parent=body,
        owned=False,  # cluster-scoped: no ownerReference to a namespaced object; deleted by the reconcile
    )
    pv_spec: dict[str, Any] = {
        "capacity": {"storage": spec.storage},
        "accessModes": access_modes(spec),
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "",
        "claimRef": {"namespace": namespace, "name": claim_name(name)},
        "csi": csi,
    }
    if options:
        pv_spec["mountOptions"] = options
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": pv_spec}


def security(user_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod Security `restricted`: the workspace pods and the engine share the files as one user."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": user_id,
        "runAsGroup": user_id,
        "fsGroup": user_id,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
    return pod, container


def deployment(body: Any, spec: models.WorkspaceSpec, cfg: Any) -> dict[str, Any]:
    name = body["metadata"]["name"]
    meta = _meta(
        body, WORKSPACE, deployment_name(name), WORKSPACE_COMPONENT, {WORKSPACE_LABEL: naming.label_value(name)}
    )
    selector = {WORKSPACE_LABEL: naming.label_value(name), "app.kubernetes.io/component": WORKSPACE_COMPONENT}
    pod_context, container_context = security(cfg.user_id)
    container: dict[str, Any] = {
        "name": "workspace",
        "image": spec.image or cfg.image,
        "workingDir": f"{cfg.mount_path}/main",
        "volumeMounts": [{"name": "data", "mountPath": cfg.mount_path}],
        "securityContext": container_context,
    }
    if not spec.image:
        container["command"] = ["sleep", "infinity"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "Recreate"} if access_modes(spec) == ["ReadWriteOnce"] else {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(meta["labels"])},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_context,
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name(name)}}],
                },
            },
        },
    }


def engine_job(
    parent: Any,
    *,
    name: str,
    operation: str,
    workspace: str,
    args: list[str],
    cfg: Any,
    node: str | None = None,
) -> dict[str, Any]:
    """An engine run: `roadie jvs <args> --root <mount> --termination-log ...`, once (backoffLimit 0),
    pinned to `node` when the claim can only be mounted there (ReadWriteOnce)."""
    extra = {WORKSPACE_LABEL: naming.label_value(workspace), OPERATION_LABEL: operation}
    meta = _meta(parent, parent["kind"], name, ENGINE_COMPONENT, extra)
    pod_context, container_context = security(cfg.user_id)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_context,
        "containers": [
            {
                "name": "engine",
                "image": cfg.engine_image,
                "command": [*cfg.engine_command, *args],
                "args": ["--root", cfg.mount_path, "--termination-log", TERMINATION_LOG],
                "terminationMessagePath": TERMINATION_LOG,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "data", "mountPath": cfg.mount_path}],
                "securityContext": container_context,
            }
        ],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name(workspace)}}],
    }
    if node:
        term = {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": [node]}]}
        pod_spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": cfg.engine_deadline_seconds,
            "template": {"metadata": {"labels": dict(meta["labels"])}, "spec": pod_spec},
        },
    }


def snapshot_args(spec: models.SnapshotSpec) -> list[str]:
    args = ["snapshot", "--engine", spec.engine]
    if spec.note:
        args += ["--note", spec.note]
    for tag in spec.tags:
        args += ["--tag", tag]
    for path in spec.partialPaths:
        args += ["--partial-path", path]
    if spec.compression is not None and spec.compression.type != "none":
        args += ["--compression", spec.compression.type, "--level", str(spec.compression.level)]
    return args


def restore_args(ref: str, worktree: str | None) -> list[str]:
    return ["restore", ref, *(["--worktree", worktree] if worktree else [])]


def auto_snapshot(body: Any, spec: models.WorkspaceSpec, name: str, tick: str) -> dict[str, Any]:
    """The Snapshot a schedule tick makes: owned by the Workspace, marked automatic."""
    workspace = body["metadata"]["name"]
    meta = _meta(
        body, WORKSPACE, name, "snapshot", {WORKSPACE_LABEL: naming.label_value(workspace), AUTO_LABEL: "true"}
    )
    meta["annotations"][TICK_ANNOTATION] = tick
    template = spec.autoSnapshot.template if spec.autoSnapshot else None
    snap_spec: dict[str, Any] = {
        "workspace": workspace,
        "engine": spec.defaultEngine,
        "note": f"automatic snapshot at {tick}",
    }
    if template:
        snap_spec["template"] = template
    return {"apiVersion": f"{models.GROUP}/{models.VERSION}", "kind": SNAPSHOT, "metadata": meta, "spec": snap_spec}


def auto_snapshot_name(spec: models.WorkspaceSpec, workspace: str, tick_compact: str) -> str:
    prefix = (spec.autoSnapshot.template if spec.autoSnapshot else None) or workspace
    return naming.child_name(prefix, tick_compact)
