"""Who may write or delete a preview namespace, and the finalizer that makes deletion wait for it.

A namespaced PreviewEnvironment cannot own a cluster-scoped Namespace through an ownerReference,
so deletion is Roadie's job: a finalizer holds the object until its namespace is gone. Ownership
is recorded on the namespace as the owning object's uid (label `roadie.dev/owner-uid`), and only
a namespace that carries this object's uid is ever written or deleted. A namespace of the same
name made by someone else, or by Roadie for another PreviewEnvironment, is never touched: the
newcomer is told who holds the name. Roadie's namespaces are read from the cache; only a name
held by someone else (so not in the cache) costs a GET, to say who holds it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lightkube.resources.core_v1 import Namespace

from roadie.core import cache, finalizers, labels, sources
from roadie.core import children as core_children
from roadie.preview import children, models, status

FINALIZER = "roadie.dev/preview-namespace"


def has_finalizer(body: dict[str, Any]) -> bool:
    return finalizers.has(body, FINALIZER)


async def add_finalizer(body: dict[str, Any]) -> None:
    """Put the finalizer on before anything is created, so nothing is ever left behind."""
    await finalizers.add(models.API, body, FINALIZER)


async def remove_finalizer(body: dict[str, Any]) -> None:
    await finalizers.remove(models.API, body, FINALIZER)


def owner_uid(namespace: dict[str, Any]) -> str | None:
    return (namespace["metadata"].get("labels") or {}).get(children.OWNER_UID)


@dataclasses.dataclass(frozen=True)
class Claim:
    """The outcome of claiming the namespace: ours, or why not (a wait, or a failure)."""

    ours: bool
    created: bool = False
    waiting: tuple[str, str] | None = None
    failure: tuple[str, str] | None = None


async def claim(manifest: dict[str, Any], uid: str) -> Claim:
    """Create the namespace, or keep it as the spec says if it is this object's; never take over
    one of the same name that is not (create, not apply, so that two claimants cannot both win)."""
    name = manifest["metadata"]["name"]
    existing = cache.get(sources.NAMESPACES, None, name)
    created = False
    if existing is None:
        created = await core_children.create_if_absent(manifest)
        existing = cache.get(sources.NAMESPACES, None, name) or await core_children.get_or_none(Namespace, name)
        if existing is None:  # created and deleted at once by someone else: try again shortly
            return Claim(False, waiting=(status.NAMESPACE_TERMINATING, f"namespace {name} vanished; retrying"))
    terminating = existing["metadata"].get("deletionTimestamp") is not None
    if owner_uid(existing) != uid:
        if terminating:
            return Claim(
                False,
                waiting=(status.NAMESPACE_TERMINATING, f"namespace {name} is being deleted; waiting to create it anew"),
            )
        return Claim(False, failure=(status.NAME_TAKEN, taken_message(existing)))
    if terminating:
        return Claim(
            False,
            waiting=(status.NAMESPACE_TERMINATING, f"namespace {name} is being deleted; it will be made again"),
        )
    if not created:
        await core_children.apply(manifest)
    return Claim(True, created=created)


def taken_message(namespace: dict[str, Any]) -> str:
    """Who holds the namespace's name, in words that tell the user what to do about it."""
    name = namespace["metadata"]["name"]
    ref = labels.parse_parent_ref((namespace["metadata"].get("annotations") or {}).get(labels.PARENT))
    uid = owner_uid(namespace)
    if uid and ref is not None and ref[0] == children.KIND:
        _, holder_ns, holder_name = ref
        holder = cache.get(sources.of_api(models.API), holder_ns, holder_name)
        who = f"PreviewEnvironment {holder_ns}/{holder_name}"
        if holder is not None and holder["metadata"].get("uid") == uid:
            return (
                f"namespace {name} is held by {who} (same pr_number); Roadie leaves both alone: "
                "delete one of them or give this one another pr_number"
            )
        return (
            f"namespace {name} was made by Roadie for {who}, which no longer exists; Roadie leaves it "
            "alone: delete the namespace to let this object use the name"
        )
    return (
        f"namespace {name} already exists and was not made by Roadie for a PreviewEnvironment; Roadie "
        "leaves it alone: delete or rename it, or give this object another pr_number"
    )


def held(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every namespace that carries this object's uid (the current one, and any left from an
    earlier pr_number), from the cache's parent index."""
    uid = body["metadata"]["uid"]
    return [ns for ns in cache.children(sources.NAMESPACES, body) if owner_uid(ns) == uid]


async def release(body: dict[str, Any], keep: str | None = None) -> tuple[list[str], list[str]]:
    """Delete this object's namespaces other than `keep`; return (deleted now, still there)."""
    deleted, remaining = [], []
    for ns in held(body):
        name = ns["metadata"]["name"]
        if name == keep:
            continue
        remaining.append(name)
        if ns["metadata"].get("deletionTimestamp") is None and await core_children.delete(Namespace, name):
            deleted.append(name)
    return deleted, remaining
