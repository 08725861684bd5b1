"""Writing children: server-side apply under one field manager, owner references, parent pointers.

Builders in each kind are pure functions that return plain manifests; this module is the only
place that turns them into API calls. Apply is idempotent by construction, so a reconcile killed
at any line and run again converges on the same objects, never on duplicates.
"""

from __future__ import annotations

from typing import Any

from lightkube import codecs
from lightkube.core.exceptions import ApiError

from roadie.core import client, labels

Manifest = dict[str, Any]


def owner_reference(body: Any, *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to `body` (a kopf body or a plain dict), blocking owner deletion."""
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def metadata(
    *,
    name: str,
    namespace: str | None,
    kind: str,
    instance: str,
    component: str,
    parent: Any,
    owned: bool = True,
    extra_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata every child carries: standard labels, the parent pointer, and (when it can be
    honoured, i.e. same namespace) an ownerReference for garbage collection."""
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**labels.standard(kind, instance, component), **(extra_labels or {})},
        "annotations": {
            labels.PARENT: labels.parent_ref(
                parent["kind"], parent["metadata"].get("namespace"), parent["metadata"]["name"]
            ),
            **(annotations or {}),
        },
    }
    if namespace is not None:
        meta["namespace"] = namespace
    if owned:
        meta["ownerReferences"] = [owner_reference(parent)]
    return meta


class ForeignObjectError(Exception):
    """A child's name is taken by an object this parent does not own; nothing was changed."""


def holder_of(existing: Any) -> str:
    """Who holds an object, in words: its controller owner, Roadie's parent pointer, or nobody."""
    meta = existing.metadata
    for ref in meta.ownerReferences or []:
        if ref.controller:
            return f"{ref.kind} {ref.name!r}"
    pointer = labels.parse_parent_ref((meta.annotations or {}).get(labels.PARENT))
    if pointer:
        return f"{pointer[0]} {pointer[2]!r}"
    return "no Roadie object (it was made by someone else)"


def owned_by(existing: Any, parent: Any) -> bool:
    uid = parent["metadata"]["uid"]
    return any(ref.uid == uid for ref in existing.metadata.ownerReferences or [])


#: Status codes with which the API server refuses a child as built: no retry will change them.
REJECTED = (400, 403, 422)


async def _existing_or_foreign(obj: Any, manifest: Manifest, parent: Any) -> Any:
    """The object of that name if `parent` owns it, None if there is none; ForeignObjectError
    (saying who holds it) if another owner, or nobody Roadie knows, made it."""
    existing = await get_or_none(type(obj), manifest["metadata"]["name"], manifest["metadata"].get("namespace"))
    if existing is not None and not owned_by(existing, parent):
        raise ForeignObjectError(
            f"{manifest['kind']} {manifest['metadata']['name']!r} already exists and belongs to "
            f"{holder_of(existing)}; delete or rename one of them"
        )
    return existing


async def apply(manifest: Manifest, parent: Any | None = None) -> Any:
    """Server-side apply, forcing ownership of the fields Roadie sets (it is their one writer).

    With `parent`, an object of that name that exists and is not owned by `parent` is left
    untouched and ForeignObjectError says who holds it: Roadie never takes over what another
    user, or another workshop, made.
    """
    obj = codecs.from_dict(manifest)
    if parent is not None:
        await _existing_or_foreign(obj, manifest, parent)
    return await client.get().apply(obj, force=True)


async def create_if_absent(manifest: Manifest, parent: Any | None = None) -> bool:
    """Create once and never overwrite (for generated secrets); True if this call created it.

    With `parent`, the same refusal as `apply`: an existing object `parent` does not own raises
    ForeignObjectError.
    """
    obj = codecs.from_dict(manifest)
    if parent is not None and await _existing_or_foreign(obj, manifest, parent) is not None:
        return False
    try:
        await client.get().create(obj)
    except ApiError as error:
        if error.status.code == 409:
            return False
        raise
    return True


async def delete(resource: Any, name: str, namespace: str | None = None, **options: Any) -> bool:
    """Delete, treating 'already gone' as success; True if this call deleted it."""
    try:
        await client.get().delete(resource, name, namespace=namespace, **options)
    except ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True


async def get_or_none(resource: Any, name: str, namespace: str | None = None) -> Any:
    try:
        return await client.get().get(resource, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


async def prune(
    resources: list[Any],
    namespace: str,
    instance_labels: dict[str, Any],
    keep: set[tuple[str, str]],
    parent: Any,
) -> list[str]:
    """Delete children of `parent` (by label, and only those it owns) that are no longer wanted.

    `keep` holds (kind, name) pairs; this is how shrinking a spec removes what it no longer asks
    for, without touching anything another object owns.
    """
    deleted: list[str] = []
    for resource in resources:
        async for obj in client.get().list(resource, namespace=namespace, labels=instance_labels):
            kind = resource.__name__
            if (kind, obj.metadata.name) in keep or not owned_by(obj, parent):
                continue
            if await delete(resource, obj.metadata.name, namespace):
                deleted.append(f"{kind}/{obj.metadata.name}")
    return deleted
