"""The manifests a Workspace and a Snapshot make: what the engine's executor, the JuiceFS CSI driver
and the API server's Job rules rely on is checked here, without a cluster."""

from __future__ import annotations

import json
from typing import Any

from roadie import settings
from roadie.workspace import children, models, status

WS = {
    "apiVersion": "jvs.io/v1alpha1",
    "kind": "Workspace",
    "metadata": {"name": "ml", "namespace": "team", "uid": "u1"},
}
SNAP = {
    "apiVersion": "jvs.io/v1alpha1",
    "kind": "Snapshot",
    "metadata": {"name": "s1", "namespace": "team", "uid": "u2"},
}
CFG = settings.WorkspaceSettings()


def spec(**fields: Any) -> models.WorkspaceSpec:
    return models.WorkspaceSpec.model_validate(fields)


def test_the_engine_job_runs_once_labelled_for_the_executor_on_the_workspaces_node() -> None:
    snap = models.SnapshotSpec.model_validate(
        {"workspace": "ml", "tags": ["a", "b"], "compression": {"type": "zstd", "level": 3}, "note": "n"}
    )
    job = children.engine_job(
        SNAP,
        name=children.job_name("s1", "create"),
        operation="create",
        workspace="ml",
        args=children.snapshot_args(snap),
        cfg=CFG,
        node="kwok-node-1",
    )
    assert job["metadata"]["name"] == "s1-jvs-create"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "snapshot-engine"
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "roadie"
    container = pod["spec"]["containers"][0]
    assert container["command"] == [
        "roadie",
        "jvs",
        "snapshot",
        "--engine",
        "copy",
        "--note",
        "n",
        "--tag",
        "a",
        "--tag",
        "b",
        "--compression",
        "zstd",
        "--level",
        "3",
    ]
    assert container["args"] == ["--root", "/workspace", "--termination-log", "/dev/termination-log"]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ml-data"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["kwok-node-1"]


def test_the_claim_follows_storage_class_and_replicas() -> None:
    claim = children.claim(WS, spec(storage="5Gi", storageClassName="fast"))
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast",
    }
    assert children.claim(WS, spec(replicas=3))["spec"]["accessModes"] == ["ReadWriteMany"]


def test_juicefs_renders_a_static_volume_as_the_csi_driver_documents_it() -> None:
    config = {
        "source": "redis://r:6379/0",
        "metaDir": "ws1",
        "cacheDir": "/var/jfs",
        "secretsRef": {"name": "jfs", "keys": ["access-key"]},
    }
    s = spec(juiceFsConfig=config, mountOptions=["cache-size=2048"])
    pv = children.juicefs_volume(WS, s)
    assert pv is not None
    assert pv["spec"]["csi"] == {
        "driver": "csi.juicefs.com",
        "volumeHandle": "jvs-team-ml",
        "fsType": "juicefs",
        "volumeAttributes": {"metaurl": "redis://r:6379/0", "secretKeys": "access-key"},
        "nodePublishSecretRef": {"name": "jfs", "namespace": "team"},
    }
    assert pv["spec"]["mountOptions"] == ["cache-size=2048", "subdir=ws1", "cache-dir=/var/jfs"]
    assert pv["spec"]["claimRef"] == {"namespace": "team", "name": "ml-data"}
    claim = children.claim(WS, s)
    assert claim["spec"]["storageClassName"] == "" and claim["spec"]["volumeName"] == "jvs-team-ml"
    # with a class named (the README's example), the class provisions it
    assert children.juicefs_volume(WS, spec(juiceFsConfig=config, storageClassName="juicefs-sc")) is None


def test_the_workspace_pods_work_in_main_with_the_default_image() -> None:
    pod = children.deployment(WS, spec(replicas=2), CFG)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["workingDir"] == "/workspace/main" and container["image"] == CFG.image
    assert container["command"] == ["sleep", "infinity"]
    custom = children.deployment(WS, spec(image="jupyter/base"), CFG)["spec"]["template"]["spec"]["containers"][0]
    assert custom["image"] == "jupyter/base" and "command" not in custom


def test_the_engines_result_is_read_from_the_termination_message() -> None:
    job = {"metadata": {"name": "s1-jvs-create"}, "status": {}}
    message = json.dumps(
        {
            "snapshotID": "1700000000000-abcdef01",
            "size": 12,
            "descriptorChecksum": "c",
            "integrityState": "Unverified",
            "createdAt": "2026-01-02T03:04:05.678Z",
        }
    )
    done = {
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": message}}}],
        }
    }
    outcome = status.outcome(job, [done])
    assert outcome.state == "succeeded"
    assert status.snapshot_result(outcome.result)["createdAt"] == "2026-01-02T03:04:05Z"
    failed_message = json.dumps({"error": "no snapshot 'x'", "reason": "NotFound", "exitCode": 3})
    failed = {"status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 3, "message": failed_message}}}]}}
    bad = status.outcome(job, [failed])
    assert (bad.state, bad.reason, bad.message) == ("failed", "NotFound", "no snapshot 'x'")
    assert status.outcome(None, []).state == "absent"
    assert status.outcome(job, [{"status": {"phase": "Running"}}]).state == "running"
    deadline = {
        "metadata": {},
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}]
        },
    }
    assert status.outcome(deadline, []).reason == "DeadlineExceeded"
