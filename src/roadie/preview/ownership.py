"""Who may write or delete a preview namespace, and the finalizer that makes deletion wait for it.

A namespaced PreviewEnvironment cannot own a cluster-scoped Namespace through an ownerReference,
so deletion is Roadie's job: a finalizer holds the object until its namespace is gone. Ownership
is recorded on the namespace as the owning object's uid (label `roadie.dev/owner-uid`), and only
a namespace that carries this object's uid is ever written or deleted. A namespace of the same
name made by someone else, or by Roadie for another PreviewEnvironment, is never touched: the
newcomer is told who holds the name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lightkube.resources.core_v1 import Namespace

from roadie.core import children as core_children
from roadie.core import client, finalizers, labels
from roadie.preview import children, models, status

FINALIZER = "roadie.dev/preview-namespace"


def has_finalizer(body: dict[str, Any]) -> bool:
    return finalizers.has(body, FINALIZER)


async def add_finalizer(body: dict[str, Any]) -> None:
    """Put the finalizer on before anything is created, so nothing is ever left behind."""
    await finalizers.add(models.API, body, FINALIZER)


async def remove_finalizer(body: dict[str, Any]) -> None:
    await finalizers.remove(models.API, body, FINALIZER)


def owner_uid(namespace: Any) -> str | None:
    return (namespace.metadata.labels or {}).get(children.OWNER_UID)


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
    existing = await core_children.get_or_none(Namespace, name)
    created = False
    if existing is None:
        created = await core_children.create_if_absent(manifest)
        existing = await core_children.get_or_none(Namespace, name)
        if existing is None:  # created and deleted at once by someone else: try again shortly
            return Claim(False, waiting=(status.NAMESPACE_TERMINATING, f"namespace {name} vanished; retrying"))
    terminating = existing.metadata.deletionTimestamp is not None
    if owner_uid(existing) != uid:
        if terminating:
            return Claim(
                False,
                waiting=(status.NAMESPACE_TERMINATING, f"namespace {name} is being deleted; waiting to create it anew"),
            )
        return Claim(False, failure=(status.NAME_TAKEN, await taken_message(existing)))
    if terminating:
        return Claim(
            False,
            waiting=(status.NAMESPACE_TERMINATING, f"namespace {name} is being deleted; it will be made again"),
        )
    if not created:
        await core_children.apply(manifest)
    return Claim(True, created=created)


async def taken_message(namespace: Any) -> str:
    """Who holds the namespace's name, in words that tell the user what to do about it."""
    name = namespace.metadata.name
    ref = labels.parse_parent_ref((namespace.metadata.annotations or {}).get(labels.PARENT))
    uid = owner_uid(namespace)
    if uid and ref is not None and ref[0] == children.KIND:
        _, holder_ns, holder_name = ref
        holder = await core_children.get_or_none(client.resource(models.API), holder_name, holder_ns)
        who = f"PreviewEnvironment {holder_ns}/{holder_name}"
        if holder is not None and holder.metadata.uid == uid:
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


async def held(uid: str) -> list[Any]:
    """Every namespace that carries this object's uid (the current one, and any left from an
    earlier pr_number)."""
    return [ns async for ns in client.get().list(Namespace, labels={children.OWNER_UID: uid})]


async def release(uid: str, keep: str | None = None) -> tuple[list[str], list[str]]:
    """Delete this object's namespaces other than `keep`; return (deleted now, still there)."""
    deleted, remaining = [], []
    for ns in await held(uid):
        name = ns.metadata.name
        if name == keep:
            continue
        remaining.append(name)
        if ns.metadata.deletionTimestamp is None and await core_children.delete(Namespace, name):
            deleted.append(name)
    return deleted, remaining
