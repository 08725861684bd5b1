"""A local-path volume provisioner for the local cluster's default StorageClass.

Without one, a claim of the default class stays Pending forever and the scheduler never places a
pod that mounts it. Like kind's local-path provisioner, it creates a hostPath PersistentVolume for
each claim (a folder under the cluster's state directory), pre-bound to the claim so the
controller-manager's binder completes the binding, and deletes the volume once its claim is gone.
It also completes the binding itself (the claim's volumeName and both phases, as the binder would
write them): the controller-manager's binder takes claims one at a time, about one and a half a
second on two cores, so the thousands of Workshops of a benchmark would wait on it, not on Roadie.
The binder then finds both sides bound and has nothing to do. Like a real external provisioner
it is driven by a watch on claims (after one full pass at start and after any error), so it costs
the API server nothing while nothing changes: polling with two lists twice a second cost a
benchmark's cluster more the more claims it held, and more the longer a run lasted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
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
from lightkube.types import PatchType

from roadie.devcluster import nodes

PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
PARALLEL = 16
#: The longest pause between two tries at provisioning one claim.
RETRY_MAX = 30.0
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


def bind(api: lightkube.Client, claim: PersistentVolumeClaim, volume: PersistentVolume) -> None:
    """Bind claim and volume as the controller-manager's binder does; a claim gone meanwhile is fine."""
    meta = claim.metadata
    name, namespace = str(meta.name), meta.namespace
    bound = {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}
    try:
        api.patch(
            PersistentVolumeClaim,
            name,
            {"metadata": {"annotations": bound}, "spec": {"volumeName": volume.metadata.name}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        api.patch(
            PersistentVolume.Status,
            str(volume.metadata.name),
            {"status": {"phase": "Bound"}},
            patch_type=PatchType.MERGE,
        )
        status = {"phase": "Bound", "accessModes": volume.spec.accessModes, "capacity": volume.spec.capacity}
        api.patch(
            PersistentVolumeClaim.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
        )
    except ApiError as error:
        if error.status.code not in (404, 409):
            raise


def our_classes(api: lightkube.Client) -> set[str]:
    return {str(sc.metadata.name) for sc in api.list(StorageClass) if sc.provisioner == nodes.PROVISIONER}


def provision(api: lightkube.Client, claim: PersistentVolumeClaim, root: pathlib.Path, exists: bool) -> None:
    volume = volume_for(claim, root)
    if not exists:
        pathlib.Path(volume.spec.hostPath.path).mkdir(parents=True, exist_ok=True)
        try:
            api.create(volume)
            log.info("provisioned %s for %s/%s", volume.metadata.name, claim.metadata.namespace, claim.metadata.name)
        except ApiError as error:
            if error.status.code != 409:
                raise
    bind(api, claim, volume)


class Classes:
    """The StorageClasses this provisioner serves, listed again when a claim names one not seen
    yet (a class made after the provisioner started), never on every claim."""

    def __init__(self, api: lightkube.Client) -> None:
        self.api = api
        self.ours = our_classes(api)
        self.seen = set(self.ours)

    def __contains__(self, name: object) -> bool:
        if name not in self.seen:
            self.ours = our_classes(self.api)
            self.seen = {*self.seen, *self.ours, str(name)}
        return name in self.ours


def waiting(claim: PersistentVolumeClaim, classes: Classes) -> bool:
    """A claim of one of our classes with no volume yet: one to provision."""
    assert claim.spec is not None and claim.metadata is not None
    return (
        not claim.spec.volumeName
        and not claim.metadata.deletionTimestamp
        and (claim.spec.storageClassName or "") in classes
    )


def release(api: lightkube.Client, pv: PersistentVolume) -> None:
    """Delete a volume we provisioned once its claim is gone (reclaim policy Delete)."""
    meta = pv.metadata
    annotations = (meta.annotations if meta else None) or {}
    if annotations.get(PROVISIONED_BY) != nodes.PROVISIONER:
        return
    try:
        api.delete(PersistentVolume, str(meta.name))
    except ApiError as error:
        if error.status.code != 404:
            raise
    if pv.spec and pv.spec.hostPath:
        shutil.rmtree(pv.spec.hostPath.path, ignore_errors=True)
    log.info("deleted released volume %s", meta.name)


def sync_once(api: lightkube.Client, root: pathlib.Path, classes: Classes) -> None:
    """One full pass: what changed while no watch ran (at start, after an error)."""
    volumes = {pv.metadata.name: pv for pv in api.list(PersistentVolume)}
    claims = [claim for claim in api.list(PersistentVolumeClaim, namespace="*") if waiting(claim, classes)]
    # a few claims at a time: each is four requests, and a benchmark makes thousands at once
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        done = [pool.submit(provision, api, c, root, f"pvc-{c.metadata.uid}" in volumes) for c in claims]
        for future in done:
            future.result()
    for pv in volumes.values():
        if pv.status is not None and pv.status.phase in ("Released", "Failed"):
            release(api, pv)


def follow(api: lightkube.Client, root: pathlib.Path, classes: Classes) -> None:
    """Provision each claim as its watch event arrives, and release its volume when it goes."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        for kind, claim in api.watch(PersistentVolumeClaim, namespace="*"):
            meta = claim.metadata
            assert meta is not None
            if kind == "DELETED":
                try:
                    release(api, api.get(PersistentVolume, f"pvc-{meta.uid}"))
                except ApiError as error:
                    if error.status.code != 404:
                        raise
            elif waiting(claim, classes):
                pool.submit(provision_until_done, api, claim, root)


def provision_until_done(api: lightkube.Client, claim: PersistentVolumeClaim, root: pathlib.Path) -> None:
    """Provision one claim, trying again (a pause that doubles, up to RETRY_MAX seconds) until it
    succeeds: a watch event comes once, so a failure must not leave the claim waiting for the
    next change of it, as a poll would not have."""
    pause = 1.0
    while True:
        try:
            provision(api, claim, root, False)
            return
        except Exception:
            assert claim.metadata is not None
            log.exception("provisioning %s/%s failed; retrying", claim.metadata.namespace, claim.metadata.name)
        time.sleep(pause)
        pause = min(2 * pause, RETRY_MAX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--root", type=pathlib.Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    api = nodes.client(args.kubeconfig)
    while True:
        try:
            classes = Classes(api)
            sync_once(api, args.root, classes)
            follow(api, args.root, classes)
        except Exception:  # keep serving: the API server may restart under us
            log.exception("sync failed; retrying")
            time.sleep(2)


if __name__ == "__main__":
    main()
