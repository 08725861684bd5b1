"""Why a child is not progressing, in words a user can act on.

Several kinds wait on the same things (a claim to bind, a pod to schedule, an image to pull), so
the reading of those objects' status into a sentence is written once, here.
"""

from __future__ import annotations

from typing import Any

from lightkube.resources.core_v1 import Pod
from lightkube.resources.storage_v1 import StorageClass

from roadie.core import children, client

WAITING_REASONS = {
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
}


async def claim_problem(claim: Any) -> str | None:
    """None if the claim is bound; otherwise what it waits for."""
    phase = claim.status.phase if claim.status else None
    if phase == "Bound":
        return None
    name = claim.metadata.name
    wanted = claim.spec.storageClassName
    if wanted:
        if await children.get_or_none(StorageClass, wanted) is None:
            known = [str(sc.metadata.name) async for sc in client.get().list(StorageClass)]
            return (
                f"claim {name!r} asks for StorageClass {wanted!r}, which does not exist in this cluster: "
                f"create it, or set spec.storage.storageClass to one that exists "
                f"({', '.join(known) or 'none found'}) or leave it empty for the default"
            )
        return f"claim {name!r} is {phase or 'Pending'}: waiting for a volume of StorageClass {wanted!r}"
    return f"claim {name!r} is {phase or 'Pending'}: waiting for a volume (is there a default StorageClass?)"


def pod_problem(pod: Any) -> str | None:
    """None if nothing is wrong with the pod yet; otherwise the first cause found."""
    status = pod.status
    if status is None:
        return None
    name = pod.metadata.name
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return f"pod {name!r} cannot be scheduled: {condition.message or condition.reason}"
    for container in (status.containerStatuses or []) + (status.initContainerStatuses or []):
        waiting = container.state.waiting if container.state else None
        if waiting and waiting.reason in WAITING_REASONS:
            return f"container {container.name!r} of pod {name!r}: {waiting.reason}: {waiting.message or ''}".rstrip(
                ": "
            )
    if status.phase == "Failed":
        return f"pod {name!r} failed: {status.message or status.reason or 'see kubectl describe pod ' + name}"
    return None


async def pod_problems(namespace: str, selector: dict[str, Any]) -> list[str]:
    found = []
    async for pod in client.get().list(Pod, namespace=namespace, labels=selector):
        problem = pod_problem(pod)
        if problem:
            found.append(problem)
    return found
