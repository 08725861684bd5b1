"""A local-path volume provisioner for the local cluster's default StorageClass.

Without one, a claim of the default class stays Pending forever and the scheduler never places a
pod that mounts it. Like kind's local-path provisioner, it creates a hostPath PersistentVolume for
each claim (a folder under the cluster's state directory), pre-bound to the claim so the
controller-manager's binder completes the binding, and deletes the volume once its claim is gone.
It polls twice a second: the local cluster holds a handful of claims, and a poll is a single list.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import shutil
import time

import lightkube
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import (
    HostPathVolumeSource,
    ObjectReference,
    PersistentVolumeSpec,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.resources.storage_v1 import StorageClass

from roadie.devcluster import nodes

PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
log = logging.getLogger("roadie.provisioner")


def volume_for(claim: PersistentVolumeClaim, root: pathlib.Path) -> PersistentVolume:
    meta = claim.metadata
    assert meta is not None and claim.spec is not None
    requests = (claim.spec.resources.requests if claim.spec.resources else None) or {}
    path = root / f"{meta.namespace}_{meta.name}_{meta.uid}"
    return PersistentVolume(
        metadata=ObjectMeta(name=f"pvc-{meta.uid}", annotations={PROVISIONED_BY: nodes.PROVISIONER}),
        spec=PersistentVolumeSpec(
            capacity={"storage": requests.get("storage", "1Gi")},
            accessModes=claim.spec.accessModes or ["ReadWriteOnce"],
            persistentVolumeReclaimPolicy="Delete",
            storageClassName=claim.spec.storageClassName,
            volumeMode=claim.spec.volumeMode or "Filesystem",
            hostPath=HostPathVolumeSource(path=str(path), type="DirectoryOrCreate"),
            claimRef=ObjectReference(
                apiVersion="v1",
                kind="PersistentVolumeClaim",
                namespace=meta.namespace,
                name=meta.name,
                uid=meta.uid,
            ),
        ),
    )


def our_classes(api: lightkube.Client) -> set[str]:
    return {str(sc.metadata.name) for sc in api.list(StorageClass) if sc.provisioner == nodes.PROVISIONER}


def sync_once(api: lightkube.Client, root: pathlib.Path) -> None:
    classes = our_classes(api)
    volumes = {pv.metadata.name: pv for pv in api.list(PersistentVolume)}
    for claim in api.list(PersistentVolumeClaim, namespace="*"):
        if (claim.spec.storageClassName or "") not in classes or claim.spec.volumeName:
            continue
        if claim.metadata.deletionTimestamp or f"pvc-{claim.metadata.uid}" in volumes:
            continue
        volume = volume_for(claim, root)
        pathlib.Path(volume.spec.hostPath.path).mkdir(parents=True, exist_ok=True)
        try:
            api.create(volume)
            log.info("provisioned %s for %s/%s", volume.metadata.name, claim.metadata.namespace, claim.metadata.name)
        except ApiError as error:
            if error.status.code != 409:
                raise
    for pv in volumes.values():
        annotations = pv.metadata.annotations or {}
        released = pv.status is not None and pv.status.phase in ("Released", "Failed")
        if annotations.get(PROVISIONED_BY) == nodes.PROVISIONER and released:
            try:
                api.delete(PersistentVolume, str(pv.metadata.name))
            except ApiError as error:
                if error.status.code != 404:
                    raise
            if pv.spec.hostPath:
                shutil.rmtree(pv.spec.hostPath.path, ignore_errors=True)
            log.info("deleted released volume %s", pv.metadata.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--root", type=pathlib.Path, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    api = nodes.client(args.kubeconfig)
    while True:
        try:
            sync_once(api, args.root)
        except Exception:  # keep serving: the API server may restart under us
            log.exception("sync failed; retrying")
            time.sleep(2)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
