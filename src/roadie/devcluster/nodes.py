"""The objects a bare control plane lacks before workloads can run: fake nodes and a default
StorageClass.

Nodes are plain Node objects carrying kwok's annotation; kwok then plays their kubelets through
the stages in `stages/kwok-stages.yaml`. Their capacity is that of an ordinary worker, so the
scheduler's resource fit behaves as in a real cluster (a pod asking for 64 CPUs stays Pending).
"""

from __future__ import annotations

import pathlib

import lightkube
from lightkube.models.core_v1 import NodeSpec, NodeStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node
from lightkube.resources.storage_v1 import StorageClass

STAGES_FILE = pathlib.Path(__file__).parent / "stages" / "kwok-stages.yaml"
MANAGED_ANNOTATION = "kwok.x-k8s.io/node"
MANAGED_VALUE = "fake"
FIELD_MANAGER = "roadie-devcluster"
STORAGE_CLASS = "standard"
PROVISIONER = "roadie.dev/local-path"
CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}


def client(kubeconfig: pathlib.Path) -> lightkube.Client:
    return lightkube.Client(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager=FIELD_MANAGER)


def node_manifest(index: int) -> Node:
    name = f"kwok-node-{index}"
    return Node(
        metadata=ObjectMeta(
            name=name,
            annotations={MANAGED_ANNOTATION: MANAGED_VALUE, "node.alpha.kubernetes.io/ttl": "0"},
            labels={
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/worker": "",
                "type": "kwok",
                "topology.kubernetes.io/zone": f"zone-{index % 2}",
            },
        ),
        spec=NodeSpec(),
        status=NodeStatus(allocatable=dict(CAPACITY), capacity=dict(CAPACITY)),
    )


def storage_class_manifest() -> StorageClass:
    return StorageClass(
        metadata=ObjectMeta(
            name=STORAGE_CLASS,
            annotations={"storageclass.kubernetes.io/is-default-class": "true"},
        ),
        provisioner=PROVISIONER,
        reclaimPolicy="Delete",
        volumeBindingMode="Immediate",
        allowVolumeExpansion=True,
    )


def ensure_cluster_objects(kubeconfig: pathlib.Path, count: int) -> None:
    api = client(kubeconfig)
    for index in range(count):
        api.apply(node_manifest(index), force=True)
    api.apply(storage_class_manifest(), force=True)


def ready_count(kubeconfig: pathlib.Path) -> int:
    try:
        found = client(kubeconfig).list(Node)
        ready = [n for n in found if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]
        return len(ready)
    except Exception:  # the API may still be settling; the caller polls
        return 0
