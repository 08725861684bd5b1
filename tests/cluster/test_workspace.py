"""Workspace and Snapshot against the local control plane, with the engine really running: the local
cluster's executor runs the engine Jobs' pods as processes on the claim's real directory, so these
tests read and write the very files a workspace pod would, and check that a snapshot holds them."""

from __future__ import annotations

import copy
import hashlib
import json
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import lightkube
import pytest
import yaml
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.types import PatchType
from tests.cluster.conftest import OperatorProcess, gone, instead_of, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
Workspace = create_namespaced_resource("jvs.io", "v1alpha1", "Workspace", "workspaces")
Snapshot = create_namespaced_resource("jvs.io", "v1alpha1", "Snapshot", "snapshots")


@pytest.fixture(scope="module")
def ws_operator(
    kubeconfig: pathlib.Path, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The shared operator stopped, and one running only the Workspace controllers in its place
    (so a test can kill and restart it)."""
    log = tmp_path_factory.mktemp("workspace") / "operator.log"
    args = ["--controllers", "workspace", "--resync-seconds", "5"]
    with instead_of(operator, OperatorProcess(kubeconfig, log, args)) as own:
        own.start()
        yield own


# -- helpers ---------------------------------------------------------------------------------
def workspace(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jvs.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name, "namespace": namespace},
            "spec": {"storage": "1Gi", **spec}}  # fmt: skip


def snapshot(namespace: str, name: str, ws: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jvs.io/v1alpha1", "kind": "Snapshot", "metadata": {"name": name, "namespace": namespace},
            "spec": {"workspace": ws, **spec}}  # fmt: skip


def create(kube: lightkube.Client, doc: dict[str, Any]) -> None:
    kube.create(codecs.from_dict(copy.deepcopy(doc)))


def status_of(kube: lightkube.Client, resource: Any, name: str, namespace: str) -> dict[str, Any]:
    return dict(kube.get(resource, name, namespace=namespace).to_dict().get("status") or {})


def phase_is(kube: lightkube.Client, resource: Any, name: str, namespace: str, *phases: str) -> Any:
    def check() -> dict[str, Any] | None:
        st = status_of(kube, resource, name, namespace)
        if st.get("phase") == "Failed" and "Failed" not in phases:
            pytest.fail(f"{name} failed: {st.get('message')}")
        return st if st.get("phase") in phases else None

    return check


def ready_workspace(kube: lightkube.Client, namespace: str, name: str, **spec: Any) -> pathlib.Path:
    """A Ready workspace and its volume's directory (the folder the provisioner made for the claim)."""
    create(kube, workspace(namespace, name, **spec))
    wait_for(f"workspace {name} Ready", phase_is(kube, Workspace, name, namespace, "Ready"), timeout=60)
    claim = kube.get(PersistentVolumeClaim, f"{name}-data", namespace=namespace)
    assert claim.spec is not None and claim.spec.volumeName
    volume = kube.get(PersistentVolume, claim.spec.volumeName)
    assert volume.spec is not None and volume.spec.hostPath is not None
    root = pathlib.Path(volume.spec.hostPath.path)
    assert (root / ".jvs").is_dir() and (root / "main").is_dir()
    return root


def write_tree(main: pathlib.Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = main / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(main: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(main)): p.read_bytes() for p in sorted(main.rglob("*")) if p.is_file()}


def engine_list(root: pathlib.Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", "from roadie.cli.jvs import app; app()", "list", "--root", str(root),
                          "--json", "--termination-log", ""], check=True, capture_output=True, text=True)  # fmt: skip
    return dict(json.loads(out.stdout))


def take(kube: lightkube.Client, namespace: str, name: str, ws: str, **spec: Any) -> dict[str, Any]:
    create(kube, snapshot(namespace, name, ws, **spec))
    return dict(wait_for(f"snapshot {name} Ready", phase_is(kube, Snapshot, name, namespace, "Ready"), timeout=60))


FILES = {
    "train.py": b"print('hello')\n",
    "data/weights.bin": bytes(range(256)) * 4096,
    "notes/readme.md": "Änderungen: ✓\n".encode(),
}


# -- tests -----------------------------------------------------------------------------------
def test_the_readme_examples_are_accepted_and_a_missing_class_is_named(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str
) -> None:
    for sample in ("workspace-ml-workspace.yaml", "snapshot-pre-deployment.yaml", "snapshot-restore-worktree.yaml",
                   "snapshot-restore-in-place.yaml"):  # fmt: skip
        doc = yaml.safe_load((ROOT / "deploy/samples" / sample).read_text())
        doc["metadata"]["namespace"] = namespace
        create(kube, doc)
    st = wait_for(
        "ml-workspace Pending naming fast-ssd",
        lambda: (
            (s := status_of(kube, Workspace, "ml-workspace", namespace)).get("phase") == "Pending"
            and "fast-ssd" in (s.get("message") or "")
            and s
        ),
    )
    assert "does not exist" in st["message"]
    spec = kube.get(Workspace, "ml-workspace", namespace=namespace).to_dict()["spec"]
    assert spec["retentionPolicy"] == {"keepMinSnapshots": 20, "keepMinAge": "48h", "keepHourly": 0, "keepDaily": 0,
                                       "keepWeekly": 0}  # fmt: skip
    assert spec["autoSnapshot"]["maxSnapshots"] == 50 and spec["defaultEngine"] == "copy"
    # a snapshot of a workspace that cannot be laid out waits, saying so
    wait_for("pre-deployment Pending", phase_is(kube, Snapshot, "pre-deployment", namespace, "Pending"))


@pytest.mark.parametrize(
    ("kind", "spec", "words"),
    [
        ("Snapshot", {"workspace": "w", "tags": ["bad tag!"]}, "should match"),
        ("Snapshot", {"workspace": "w", "compression": {"type": "gzip", "level": 10}}, "less than or equal to 9"),
        ("Snapshot", {"workspace": "w", "engine": "rsync"}, "Unsupported value"),
        ("Workspace", {"autoSnapshot": {"enabled": True, "schedule": "every hour"}}, "should match"),
        ("Workspace", {"retentionPolicy": {"keepMinAge": "two days"}}, "should match"),
        ("Workspace", {"autoSnapshot": {"enabled": True}}, "needs autoSnapshot.schedule"),
    ],
)
def test_bad_input_is_refused_by_the_api_server(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str, kind: str, spec: dict[str, Any], words: str
) -> None:
    doc = {"apiVersion": "jvs.io/v1alpha1", "kind": kind, "metadata": {"name": "bad", "namespace": namespace},
           "spec": spec}  # fmt: skip
    with pytest.raises(ApiError) as refused:
        create(kube, doc)
    assert refused.value.status.code == 422
    assert words in (refused.value.status.message or "")


def test_a_snapshot_holds_the_files_and_restores_them_byte_for_byte(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str
) -> None:
    root = ready_workspace(kube, namespace, "ws")
    write_tree(root / "main", FILES)
    st = take(kube, namespace, "first", "ws", tags=["v1"], note="before the change")
    assert st["size"] == sum(len(d) for d in FILES.values())
    assert st["fileCount"] == len(FILES)
    listed = engine_list(root)
    assert [s["snapshotID"] for s in listed["snapshots"]] == [st["snapshotID"]]
    descriptor = json.loads((root / ".jvs/snapshots" / st["snapshotID"] / "descriptor.json").read_text())
    assert descriptor["descriptorChecksum"] == st["descriptorChecksum"]
    assert st["createdAt"] and st["completedAt"] and st["integrityState"]
    wait_for("workspace counts it", lambda: status_of(kube, Workspace, "ws", namespace).get("snapshotCount") == 1)
    assert status_of(kube, Workspace, "ws", namespace)["currentSnapshot"] == st["snapshotID"]

    # the user changes and deletes files, then rolls main/ back from kubectl
    (root / "main/train.py").write_bytes(b"broken\n")
    (root / "main/data/weights.bin").unlink()
    (root / "main/extra.txt").write_bytes(b"new file\n")
    create(kube, snapshot(namespace, "rollback", "ws", sourceSnapshot="first", restoreOnCreate=True))
    done = wait_for("rollback Ready", phase_is(kube, Snapshot, "rollback", namespace, "Ready"), timeout=60)
    assert done["restoreStatus"]["phase"] == "Completed" and done["snapshotID"] == st["snapshotID"]
    assert read_tree(root / "main") == FILES
    # the rollback owns no data: deleting it leaves the snapshot on the volume
    kube.delete(Snapshot, "rollback", namespace=namespace)
    wait_for("rollback gone", gone(lambda: kube.get(Snapshot, "rollback", namespace=namespace)))
    assert len(engine_list(root)["snapshots"]) == 1


def test_a_worktree_restore_leaves_main_alone(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str
) -> None:
    root = ready_workspace(kube, namespace, "ws")
    write_tree(root / "main", FILES)
    st = take(kube, namespace, "branch", "ws", restoreOnCreate=True, restoreWorktree="test-branch")
    assert st["restoreStatus"]["worktreeName"] == "test-branch" and st["restoreStatus"]["phase"] == "Completed"
    (root / "main/train.py").write_bytes(b"changed after\n")
    assert read_tree(root / "worktrees/test-branch") == FILES
    assert (root / "main/train.py").read_bytes() == b"changed after\n"


def test_deleting_a_snapshot_frees_its_data(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str
) -> None:
    root = ready_workspace(kube, namespace, "ws")
    write_tree(root / "main", FILES)
    st = take(kube, namespace, "one", "ws")
    assert (root / ".jvs/snapshots" / st["snapshotID"]).is_dir()
    kube.delete(Snapshot, "one", namespace=namespace)
    wait_for("snapshot object gone", gone(lambda: kube.get(Snapshot, "one", namespace=namespace)), timeout=60)
    assert not (root / ".jvs/snapshots" / st["snapshotID"]).exists()
    assert engine_list(root)["snapshots"] == []


def test_an_automatic_snapshot_fires_on_the_tick(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str
) -> None:
    auto = {"enabled": True, "schedule": "* * * * *", "template": "checkpoint", "maxSnapshots": 1}
    root = ready_workspace(kube, namespace, "ws", autoSnapshot=auto)
    write_tree(root / "main", FILES)
    st = status_of(kube, Workspace, "ws", namespace)
    tick = st["nextSnapshotTime"]
    wait_for("the tick", lambda: time.time() > time.mktime(time.strptime(tick, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone,
             timeout=70)  # fmt: skip
    expected = "checkpoint-" + time.strftime("%Y%m%d-%H%M", time.strptime(tick, "%Y-%m-%dT%H:%M:%SZ"))
    made = wait_for("the automatic snapshot Ready", phase_is(kube, Snapshot, expected, namespace, "Ready"), timeout=30)
    assert made["size"] == sum(len(d) for d in FILES.values())
    snap = kube.get(Snapshot, expected, namespace=namespace)
    assert snap.metadata is not None and (snap.metadata.labels or {}).get("jvs.io/auto-snapshot") == "true"


def test_the_operator_killed_mid_snapshot_finishes_it_once(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str
) -> None:
    root = ready_workspace(kube, namespace, "ws")
    write_tree(root / "main", {f"big/{i}.bin": hashlib.sha256(str(i).encode()).digest() * 32768 for i in range(40)})
    create(kube, snapshot(namespace, "crash", "ws"))
    wait_for("the engine Job", lambda: kube.get(Job, "crash-jvs-create", namespace=namespace))
    ws_operator.kill()
    time.sleep(2)  # the Job runs on while no operator watches
    ws_operator.start()
    st = wait_for("crash Ready", phase_is(kube, Snapshot, "crash", namespace, "Ready"), timeout=90)
    assert len(engine_list(root)["snapshots"]) == 1
    assert st["snapshotID"] == engine_list(root)["snapshots"][0]["snapshotID"]
    jobs = [j.metadata.name for j in kube.list(Job, namespace=namespace) if j.metadata]
    assert jobs.count("crash-jvs-create") <= 1 and not any(
        j.startswith("crash-") and j != "crash-jvs-create" for j in jobs
    )


def test_retention_removes_old_untagged_snapshots_and_their_data(
    kube: lightkube.Client, ws_operator: OperatorProcess, namespace: str
) -> None:
    policy = {"keepMinSnapshots": 1, "keepMinAge": "3s", "keepTags": ["release"]}
    root = ready_workspace(kube, namespace, "ws")
    write_tree(root / "main", FILES)
    kept_tag = take(kube, namespace, "tagged", "ws", tags=["release"])
    old = take(kube, namespace, "old", "ws")
    newest = take(kube, namespace, "newest", "ws")
    # the policy arrives once all three exist: only "old" is neither tagged, newest nor current
    kube.patch(Workspace, "ws", {"spec": {"retentionPolicy": policy}}, namespace=namespace, patch_type=PatchType.MERGE)
    wait_for("old removed", gone(lambda: kube.get(Snapshot, "old", namespace=namespace)), timeout=30)
    ids = {s["snapshotID"] for s in engine_list(root)["snapshots"]}
    assert ids == {kept_tag["snapshotID"], newest["snapshotID"]}
    assert old["snapshotID"] not in ids
    assert kube.get(Snapshot, "tagged", namespace=namespace) and kube.get(Snapshot, "newest", namespace=namespace)
