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


async def apply(manifest: Manifest) -> Any:
    """Server-side apply, forcing ownership of the fields Roadie sets (it is their one writer)."""
    obj = codecs.from_dict(manifest)
    return await client.get().apply(obj, force=True)


async def create_if_absent(manifest: Manifest) -> bool:
    """Create once and never overwrite (for generated secrets); True if this call created it."""
    try:
        await client.get().create(codecs.from_dict(manifest))
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
