"""Why a child is not progressing, in words a user can act on.

Several kinds wait on the same things (a claim to bind, a pod to schedule, an image to pull, a
Deployment to roll out), so the reading of those objects' status into a sentence, and the test
of "available", are written once, here. Everything is read from the cache.
"""

from __future__ import annotations

from typing import Any

from roadie.core import cache, sources

Body = dict[str, Any]

WAITING_REASONS = {
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
}


def _status(obj: Body | None) -> Body:
    return (obj or {}).get("status") or {}


def deployment_available(deployment: Body | None, *, all_replicas: bool = True) -> bool:
    """Available at the current spec: the rollout is observed and done. With `all_replicas`,
    every wanted replica is updated and available and no pod of an older rollout is left;
    otherwise one available updated replica suffices."""
    if deployment is None:
        return False
    st = _status(deployment)
    current = (st.get("observedGeneration") or 0) >= (deployment["metadata"].get("generation") or 0)
    updated, available = st.get("updatedReplicas") or 0, st.get("availableReplicas") or 0
    if not all_replicas:
        return current and available >= 1 and updated >= 1
    wanted = (deployment.get("spec") or {}).get("replicas")
    wanted = 1 if wanted is None else wanted
    return current and updated >= wanted and available >= wanted and (st.get("replicas") or 0) == updated


def deployment_problems(deployment: Body | None) -> list[str]:
    """What the Deployment itself reports: quota refusals (no pod is ever made) and timeouts."""
    found = []
    for cond in _status(deployment).get("conditions") or []:
        if (cond.get("type") == "ReplicaFailure" and cond.get("status") == "True") or (
            cond.get("type") == "Progressing" and cond.get("status") == "False"
        ):
            name = (deployment or {}).get("metadata", {}).get("name")
            found.append(f"deployment {name}: {cond.get('reason')}: {cond.get('message')}")
    return found


def claim_problem(claim: Body | None) -> str | None:
    """None if the claim is bound; otherwise what it waits for."""
    if claim is None:
        return "claim not created yet"
    phase = _status(claim).get("phase")
    if phase == "Bound":
        return None
    name = claim["metadata"]["name"]
    wanted = (claim.get("spec") or {}).get("storageClassName")
    if wanted:
        if cache.watched(sources.STORAGE_CLASSES) and cache.get(sources.STORAGE_CLASSES, None, wanted) is None:
            known = sorted(sc["metadata"]["name"] for sc in cache.all_of(sources.STORAGE_CLASSES))
            return (
                f"claim {name!r} asks for StorageClass {wanted!r}, which does not exist in this cluster: "
                f"create it, or set the storage class to one that exists "
                f"({', '.join(known) or 'none found'}) or leave it empty for the default"
            )
        return f"claim {name!r} is {phase or 'Pending'}: waiting for a volume of StorageClass {wanted!r}"
    return f"claim {name!r} is {phase or 'Pending'}: waiting for a volume (is there a default StorageClass?)"


def pod_problem(pod: Body) -> str | None:
    """None if nothing is wrong with the pod yet; otherwise the first cause found."""
    status = pod.get("status")
    if not status:
        return None
    name = pod["metadata"]["name"]
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"pod {name!r} cannot be scheduled: {condition.get('message') or condition.get('reason')}"
    for container in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") in WAITING_REASONS:
            text = f"container {container.get('name')!r} of pod {name!r}: {waiting['reason']}: "
            return (text + (waiting.get("message") or "")).rstrip(": ")
    if status.get("phase") == "Failed":
        why = status.get("message") or status.get("reason") or "see kubectl describe pod " + name
        return f"pod {name!r} failed: {why}"
    return None


def pod_problems(parent: Any, selector: dict[str, str] | None = None) -> list[str]:
    """Problems of the cached pods that carry `parent`'s pointer (and match `selector`)."""
    found = []
    for pod in cache.children(sources.PODS, parent):
        pod_labels = pod["metadata"].get("labels") or {}
        if selector and any(pod_labels.get(k) != v for k, v in selector.items()):
            continue
        problem = pod_problem(pod)
        if problem:
            found.append(problem)
    return found
